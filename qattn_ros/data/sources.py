"""Open any supported data source from a config mapping {kind: ..., path: ..., ...}."""

from __future__ import annotations

from .record import DataError, Source
from .simlog import SimLogSource

KINDS = {"simlog": SimLogSource}


def open_source(spec: dict | str) -> Source:
    """`spec` is a mapping with `kind` and the reader's arguments, or a path to a simulator log."""
    if isinstance(spec, str):
        spec = {"kind": "simlog", "path": spec}
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in KINDS:
        raise DataError(f"data source kind {kind!r} unknown; expected one of {', '.join(KINDS)}")
    try:
        return KINDS[kind](**spec)
    except TypeError as error:
        raise DataError(f"data source {kind}: {error}") from None
