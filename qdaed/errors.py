"""Errors a user can cause. The CLI prints them without a traceback and exits non-zero."""


class QdaedError(Exception):
    """Base class of every error qdaed raises on purpose."""


class InputError(QdaedError, ValueError):
    """An array or option passed to a qdaed function is not what it expects.

    The message names the argument, what was expected and what was received. Raised with
    :meth:`at`, it also carries them as data: ``field`` (the argument, option or config
    field, e.g. ``config.quant.bits``) and ``reason`` (the message after ``field: ``), so that
    a caller can name the field differently (``qdaed pipeline`` names the option that set it)
    without reading the message.
    """

    field = None
    reason = None

    @classmethod
    def at(cls, field, reason):
        """The error ``"{field}: {reason}"``, with ``field`` and ``reason`` as attributes."""
        exc = cls(f"{field}: {reason}")
        exc.field, exc.reason = field, reason
        return exc

    def within(self, prefix):
        """This error, its field inside ``prefix`` (``prefix.field: reason``): the same type,
        and the field kept as data when it was given."""
        if self.field is None:
            return type(self)(f"{prefix}.{self}")
        return type(self).at(f"{prefix}.{self.field}", self.reason)


class NonFiniteError(InputError):
    """An array holds NaN or infinity (``qdaed.validate.check_array``). Inside a deployed
    model, whose inputs were checked first, it means the model file's weights overflow."""


class DataError(QdaedError):
    """Audio files or manifests that cannot be used (missing, unreadable, malformed)."""


class ModelFileError(QdaedError):
    """A model or checkpoint file that cannot be read by this version of qdaed."""
