"""Small file helpers shared by the command-line tools: atomic writes, and the checks that
keep a command from writing over its own inputs or reading what is not a regular file."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import Iterable

from raydream.core.errors import DataError


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file renamed into place, so that a failed
    write never leaves a partial file under the final name."""
    return write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """As `write_text_atomic`, for bytes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def temporary_sibling(target: Path) -> Path:
    """A new hidden name beside `target` (".NAME.tmp-XXXXXXXX") for what is built there and
    renamed to `target` once whole, or for what `target` held while it is replaced."""
    return target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"


def require_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` as a Path, if it is a regular file (not a directory, FIFO, socket or device,
    which a reader would wait on or misread).

    Raises:
        DataError: it is missing or not a regular file, saying which.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a directory; expected a {what}")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise DataError(f"{path}: is {kind}, not a regular {what}")
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_within(path: str | os.PathLike, directory: str | os.PathLike) -> bool:
    """True when `path` is `directory` or lies below it (both resolved, links followed)."""
    path, directory = Path(path).resolve(), Path(directory).resolve()
    return path == directory or directory in path.parents


def refuse_overwriting_inputs(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                              flag: str) -> None:
    """Refuse an output file that is one of the command's input files (the same path, or the
    same file through a link).

    Raises:
        DataError: naming the flag, the output and the input it would replace.
    """
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        if out.resolve() == source.resolve() or _same(out, source):
            raise DataError(f"{flag} {output}: is the input {given}; write the output to another file")


def check_writable_location(location: str | os.PathLike, flag: str) -> None:
    """Check, creating nothing, that a directory can be made or written at `location`: it is
    a directory, or does not exist and its nearest existing parent is a writable directory.

    Raises:
        DataError: naming the flag and the path that is in the way.
    """
    path = Path(location).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"{flag} {location}: exists and is not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise DataError(f"{flag} {location}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {location}: {probe} is not writable")
