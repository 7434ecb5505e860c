# The image KubeflowV2DagRunner's tasks run in: TFX 1.16's own image plus cxr-tfx, installed
# from the same lock file as local development. Components are referenced by module path
# (components.image_example_gen.executor.Executor, ...), so no wheel is built at compile time.
#
# Build it with `make image` (docker or podman): tagged cxr-tfx:<version>, setup.py's version,
# the tag `cxr-tfx compile --image` defaults to. Push it where the cluster pulls from:
#   docker tag cxr-tfx:<version> REGISTRY/cxr-tfx:<version> && docker push REGISTRY/cxr-tfx:<version>
# and compile with --image REGISTRY/cxr-tfx:<version> (docs/kubeflow.md). The development
# machines have no container engine: the test suite lints this file (hadolint), it never builds it.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

ARG VERSION=unset
LABEL org.opencontainers.image.title="cxr-tfx" \
      org.opencontainers.image.version="${VERSION}"

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
