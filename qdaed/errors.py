"""Errors a user can cause. The CLI prints them without a traceback and exits non-zero."""


class QdaedError(Exception):
    """Base class of every error qdaed raises on purpose."""


class InputError(QdaedError, ValueError):
    """An array or option passed to a qdaed function is not what it expects.

    The message names the argument, what was expected and what was received.
    """


class NonFiniteError(InputError):
    """An array holds NaN or infinity (``qdaed.validate.check_array``). Inside a deployed
    model, whose inputs were checked first, it means the model file's weights overflow."""


class DataError(QdaedError):
    """Audio files or manifests that cannot be used (missing, unreadable, malformed)."""


class ModelFileError(QdaedError):
    """A model or checkpoint file that cannot be read by this version of qdaed."""
