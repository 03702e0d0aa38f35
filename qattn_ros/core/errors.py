"""The errors every layer raises for bad input; each message names what was wrong and where.

They live here, below every other module, so that a low layer (preprocessing, the model)
never imports a higher one just to raise.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names it."""


class DataError(RuntimeError):
    """Input data is missing or malformed; the message names the file, column or topic."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not match its config; the message says which."""
