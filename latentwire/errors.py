"""Every error a user can cause, in one place with no dependencies; the CLI prints each as one line.

Modules raise these; they never define their own exception classes.
"""


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied."""


class DataError(ValueError):
    """A dataset file that cannot be read at all (bad rows are skipped and counted instead)."""


class OfflineModelError(RuntimeError):
    """An offline receiver that cannot be found, assembled or verified."""


class AlignmentError(ValueError):
    """The prompt's tokens are not a prefix of the prompt+answer tokens (t=0 misalignment)."""


class PromptError(ValueError):
    """A prompt that cannot be built (bad policy, double BOS, empty content)."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, tampered with or made by another configuration."""


class PacketError(ValueError):
    """A byte string that is not a valid LatentWire packet."""


class CodingError(ValueError):
    """Bytes that do not decode under a wire coding, or text that a coding cannot carry exactly."""


class TrainingError(RuntimeError):
    """Training cannot go on (too many non-finite steps, no usable data)."""


class Overloaded(RuntimeError):
    """The server's model queue is full: the request is refused at once (HTTP 503), not queued."""


USER_ERRORS = (ConfigError, DataError, OfflineModelError, AlignmentError, PromptError, CheckpointError,
               PacketError, CodingError, TrainingError, ValueError, OSError)
