"""Trainer: a stock-TFX-Trainer ``run_fn`` (``components.trainer.task.run_fn``) that trains a
small two-head Keras model (class + lung mask) from ``make_dataset`` and exports a SavedModel
whose ``serving_default`` takes raw PNG/JPEG bytes through the Transform graph; plus the
pipeline's Trainer (the stock one with ClassBalance's class weights as an optional input) and
the Evaluator's configuration."""
