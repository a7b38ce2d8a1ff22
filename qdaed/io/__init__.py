"""Files qdaed writes: atomic writes (:mod:`qdaed.io.atomic`) and pickle-free model and
checkpoint files (:mod:`qdaed.io.modelfile`)."""
