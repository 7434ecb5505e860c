"""Transform: the seed's conditional image/mask decoding as a tf.Transform preprocessing_fn with
one static output shape, and ``make_dataset`` that applies the graph for training code."""
