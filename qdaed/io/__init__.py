"""Files qdaed writes and reads, whatever they hold: atomic writes (:mod:`qdaed.io.atomic`),
strict JSON (:mod:`qdaed.io.strictjson`), the pickle-free safetensors container of model files
(:mod:`qdaed.io.modelfile`) and checkpoints (:mod:`qdaed.io.checkpoint`), path checks
(:mod:`qdaed.io.paths`) and event-list formats (:mod:`qdaed.io.sedformats`). What a model
file's document means is :mod:`qdaed.formats`."""
