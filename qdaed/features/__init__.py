"""LFBE front end (``lfbe``) and the on-disk feature store (``extract_features``).

``qdaed.features.lfbe(waveform, sample_rate, **options)`` is Kaldi's fbank in NumPy (see
``qdaed.features.lfbe`` for the equations and every option); ``qdaed features`` runs it over a
manifest with caching and a process pool (``qdaed.features.store``).
"""

from qdaed.features.lfbe import LfbeOptions, lfbe, make_options, num_frames  # noqa: F401
