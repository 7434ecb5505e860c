"""cxr-tfx pipelines: ``create_pipeline`` (pure), runners, and the ``cxr-tfx`` CLI."""
