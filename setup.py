"""cxr-tfx: TFX components that turn an image/mask CSV index (or an image folder; PNG, JPEG or
DICOM) into validated, sharded tf.Examples.

Loose requirements live here; the exact, tested set is pinned in requirements.lock
(installed by `make install`). Keep the two in step (`make lock` re-resolves the lock).
"""
from setuptools import find_packages
from setuptools import setup

setup(
    name='cxr-tfx',
    version='0.1.0',
    description=('TFX components for chest X-ray image datasets: ImageExampleGen, '
                 'ClassBalance validation, Transform and pipelines.'),
    python_requires='>=3.10,<3.11',
    packages=find_packages(include=['components', 'components.*', 'pipeline', 'pipeline.*']),
    package_data={'components': ['../schemas/*.pbtxt']},
    install_requires=[
        'tfx[kfp]>=1.16,<1.22',
        'apache-beam[gcp]>=2.59,<2.74',  # tfx-bsl 1.16 imports dill, dropped in Beam 2.74
        'tensorflow>=2.16,<2.17',
        'tensorflow-data-validation>=1.16,<1.22',
        'tensorflow-transform>=1.16,<1.22',
        'ml-metadata>=1.16,<1.22',
        'pillow>=9',
        'opencv-python-headless>=4.8',  # libpng (cv2.imdecode): the one PNG decode per file
        'numpy<2',
        # DICOM input: pydicom reads and renders; pylibjpeg's plugins decode JPEG / JPEG-LS
        # (libjpeg) and JPEG 2000 (openjpeg) pixel data (RLE and deflate are pydicom's own).
        'pydicom>=3.0,<3.1',
        'pylibjpeg>=2.0',
        'pylibjpeg-libjpeg>=2.1',
        'pylibjpeg-openjpeg>=2.0',
    ],
    extras_require={'test': ['pytest', 'pytest-timeout', 'hypothesis']},
    entry_points={'console_scripts': ['cxr-tfx=pipeline.cli:main']},
)
