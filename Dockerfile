# The image KubeflowV2DagRunner's tasks run in: TFX 1.16's own image plus cxr-tfx, installed
# from the same lock file as local development. Components are referenced by module path
# (components.image_example_gen.executor.Executor, ...), so no wheel is built at compile time.
#
# Not built on the development machines (they have no Docker engine); linted with hadolint
# in the test suite. Build and push:  docker build -t REGISTRY/cxr-tfx:TAG . && docker push ...
FROM gcr.io/tfx-oss-public/tfx:1.16.0

WORKDIR /opt/cxr-tfx
COPY requirements.lock setup.py README.md ./
COPY components ./components
COPY pipeline ./pipeline
COPY schemas ./schemas

# uv resolves this stack in seconds where pip backtracks for minutes; --system installs into the
# image's Python 3.10, where TFX already lives.
RUN python -m pip install --no-cache-dir uv==0.13.9 \
 && uv pip install --system --no-cache -r requirements.lock \
 && uv pip install --system --no-cache --no-deps . \
 && python -c "import components.image_example_gen.executor, pipeline.pipeline"
