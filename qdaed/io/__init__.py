"""Files qdaed writes and reads: atomic writes (:mod:`qdaed.io.atomic`), pickle-free model and
checkpoint files (:mod:`qdaed.io.modelfile`; the model document's schema and checks
:mod:`qdaed.io.header`), and interchange with PyTorch (:mod:`qdaed.io.interchange`) and ONNX
(:mod:`qdaed.io.onnx_export`)."""
