"""The errors every layer raises for bad input; each message names what was wrong and where.

They live here, below every other module, so that a low layer (preprocessing, the model)
never imports a higher one just to raise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names it."""


class DataError(RuntimeError):
    """Input data is missing or malformed; the message names the file, column or topic."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not match its config; the message says which."""


def script_result(program: str, work: Callable[[], str], *expected: type[Exception]) -> int:
    """A script's exit status: `work`'s line on stdout and 0, or one line `program: error` on stderr and 1 when it
    raises one of the `expected` errors (bad input, said plainly; anything else is a bug and keeps its traceback)."""
    try:
        line = work()
    except expected as error:
        print(f"{program}: {error}", file=sys.stderr)
        return 1
    print(line)
    return 0
