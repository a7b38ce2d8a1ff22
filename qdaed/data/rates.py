"""Sample rates: the one rate the front end and every model work at, and the range of rates a
file may declare (a header saying 1 Hz would be resampled ×16,000). Everything that means
"16 kHz" imports :data:`SAMPLE_RATE` from here."""

SAMPLE_RATE = 16000
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "SAMPLE_RATE"]
