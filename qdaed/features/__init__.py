"""LFBE front end (``lfbe``), its preparation for a network, and the on-disk feature store.

``qdaed.features.lfbe(waveform, sample_rate, **options)`` is Kaldi's fbank in NumPy (see
``qdaed.features.fbank`` for the equations and every option); ``qdaed.features.prepare`` holds
the equal-length policy and the per-bin normalisation; ``qdaed features`` runs the front end
over a manifest with caching and a process pool (``qdaed.features.store``).
"""

from qdaed.features.fbank import LfbeOptions, lfbe, make_options, num_frames  # noqa: F401
