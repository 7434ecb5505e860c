"""cxr-tfx TFX components.

Subpackages import TensorFlow/TFX only where they define components or executors; the pure
modules (``features``, ``image_example_gen.index``, ``image_example_gen.assignment``,
``image_example_gen.config``) stay light so CLIs and tests can use them cheaply.
"""
