"""ImageExampleGen: a CSV index of image/mask files -> class-stratified, deterministic shards.

Import ``components.image_example_gen.component.ImageExampleGen`` for the TFX component; the
modules ``config``, ``index`` and ``assignment`` are pure and import neither TensorFlow nor TFX.
"""
