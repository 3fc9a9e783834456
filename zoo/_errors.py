"""The exceptions that `zoo` raises. Every message names the problem and the fix."""


class ZooError(Exception):
    """Base class of every error raised by `zoo`."""


class HubError(ZooError):
    """A Hugging Face Hub download or upload failed."""


class CheckpointError(ZooError):
    """A checkpoint folder is missing, corrupt, or does not match its config."""


class UnknownModelError(ZooError, LookupError):
    """A model name, family or config type is not registered."""


class DataError(ZooError):
    """A data set is missing or malformed."""


class ConfigError(ZooError, ValueError):
    """A configuration is invalid."""
