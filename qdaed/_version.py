"""The version of qdaed, read by setup.cfg and written into model files, run logs and vectors."""

__version__ = "0.1.0"
