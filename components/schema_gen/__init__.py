"""CuratedSchemaGen: the curated schema with the class feature's domain taken from the class
mapping at run time (the mapping is the one source of truth for the classes)."""
