"""Files a crash cannot leave half-written, and readers that refuse what an older crash left.

A whole file is written under a temporary name in its own folder, fsynced, and renamed over
the target (a rename within one folder is atomic on POSIX), then the folder is fsynced so that
the rename itself survives a power cut. A killed writer leaves the old file, or the new one,
never a mix; at most a hidden `.<stem>.<pid>-<host>.<8 random>.tmp<suffix>` leftover, which no reader opens
and `remove_leftovers` removes once the process `<pid>` of this host (`<host>`) no longer runs.
Append-only JSON-lines files cannot be renamed per record: each batch of whole lines is one
write, flushed and fsynced, and a line cut short by a crash is cut off before the next append.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# `.<stem>.[<pid>-<host>.]<8 random>.tmp<suffix>`: the random part of temp_beside (hex) or of mkdtemp (atomic_folder);
# names without the writer (older versions) are still refused by readers, but never removed (their writer is unknown)
_LEFTOVER = re.compile(
    r"^\.(?P<stem>.+?)\.(?:(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{6})\.)?[0-9a-z_]{8}\.tmp(?P<suffix>.*)$", re.ASCII
)


def _host_tag() -> str:
    """6 hex naming this host and pid namespace: a pid is only asked about where it was taken (a folder shared
    with another machine or container holds temporaries of processes this one cannot see)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:6]


HOST = _host_tag()


def writer_tag() -> str:
    """What a temporary name carries of the process writing it: `<pid>-<host>`."""
    return f"{os.getpid()}-{HOST}"


class TornFileWarning(UserWarning):
    """A file a crash left unreadable (or written for other inputs) was set aside and is computed again."""


def refuse(path: Path, why: str) -> None:
    """Say, naming the file, that it is not used and what it is computed from instead."""
    warnings.warn(f"{path}: {why}; computed again", TornFileWarning, stacklevel=3)


def fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def file_sha256(path: str | Path) -> str:
    """A file's SHA-256, read in blocks (checkpoints, manifests of downloaded data)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def leftover_of(path: str | Path) -> Path | None:
    """The file a temporary name was written for, or None when `path` is not such a leftover."""
    path = Path(path)
    match = _LEFTOVER.match(path.name)
    return path.with_name(match["stem"] + match["suffix"]) if match else None


def _runs(pid: int) -> bool:
    """Whether process `pid` of this host runs (or may: one of another user, which cannot be asked, counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it runs, as another user; no pid of ours is that large
        return True
    return True


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders (`temp_beside`, `atomic_folder`) in `folder` whose writer no longer
    runs: a SIGKILL skips the cleanup that removes them. Only names of this module's making that carry a
    writer of this host, owned by this user; a live writer's temporary is kept. Returns what it removed."""
    try:
        names = os.listdir(folder)
    except OSError:  # no folder yet, or not one
        return []
    removed, runs = [], {}
    for name in names:
        match = _LEFTOVER.match(name)
        if match is None or match["pid"] is None or match["host"] != HOST:
            continue
        path, pid = Path(folder) / name, int(match["pid"])
        try:
            status = path.lstat()
            if status.st_uid != os.geteuid() or stat.S_ISLNK(status.st_mode):
                continue
            if pid not in runs:  # asked after the listing: a writer that made a listed file runs now or never again
                runs[pid] = _runs(pid)
            if runs[pid]:
                continue
            if stat.S_ISDIR(status.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # removed meanwhile (by another janitor), or not ours to remove: left
            continue
        removed.append(path)
    return removed


@contextmanager
def temp_beside(path: str | Path) -> Iterator[Path]:
    """A new, empty temporary file in `path`'s folder (same suffix, so writers pick the format), removed at
    exit unless `commit` renamed it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.stem}.{writer_tag()}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies, as to open()
            break
        except FileExistsError:
            continue
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: Path, path: Path) -> None:
    """fsync `tmp`, rename it over `path`, fsync the folder: from here on `path` is the new file."""
    fsync(tmp)
    os.replace(tmp, path)
    fsync(path.parent)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; committed when the block ends without an error."""
    path = Path(path)
    with temp_beside(path) as tmp:
        yield tmp
        commit(tmp, path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, value: object, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(value, indent=indent) + "\n")


def save_figure(figure, path: str | Path, dpi: int = 90) -> Path:
    """A matplotlib figure saved through a temporary file (its format from `path`'s suffix)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi)
    return Path(path)


def write_csv(path: str | Path, header: list[str], rows: list[list]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def read_json(path: str | Path) -> object | None:
    """The JSON value in `path`; None when there is none, or (with a TornFileWarning naming it) when a crash
    left it unreadable, so that the caller computes it again."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        refuse(path, f"not valid JSON, a write cut short ({error})")
        return None


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """A path, not yet created, to build `folder`'s new content under (inside a hidden temporary folder beside
    it, so that the content keeps its own name); put in place when the block ends without an error."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder.parent)
    holder = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.{writer_tag()}.", suffix=".tmp"))
    try:
        yield holder / folder.name
        commit_folder(holder / folder.name, folder)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def commit_folder(tmp: Path, folder: Path) -> None:
    """Put a folder built under a temporary name in place of `folder`, its files on the disk first.

    Two renames cannot replace a non-empty folder atomically: the old one is removed first, so a crash in
    between leaves no folder (a reader builds it again), never a mix."""
    for child in tmp.rglob("*"):
        if child.is_file():
            fsync(child)
    fsync(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    fsync(folder.parent)


def drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so that appended records start on their own line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        warnings.warn(f"{path}: dropped a last line a crash cut short ({len(data) - keep} bytes)", TornFileWarning,
                      stacklevel=2)  # fmt: skip
        with path.open("r+b") as handle:
            handle.truncate(keep)


def append_lines(handle: IO[str], lines: list[str]) -> None:
    """Whole lines in one write, on the disk before returning: what is written survives a crash after it."""
    handle.write("".join(line + "\n" for line in lines))
    handle.flush()
    os.fsync(handle.fileno())
