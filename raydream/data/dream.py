"""Streaming reader and validator for DREAM-format text files.

A DREAM file has one `SEQUENCE<TAB>EXPRESSION` row per line and no header; `.gz` files are
decompressed on the fly. Rows are parsed by pyarrow's streaming CSV reader and validated a
block at a time with pyarrow compute kernels, so memory stays bounded by the block size
whatever the file size. The rare error path re-reads the file line by line to name the first
offending line exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from raydream.errors import DataError

DNA_ALPHABET = "ACGTN"
_DNA_RE = "^[ACGTN]+$"
# A plain decimal or scientific-notation number; rejects nan/inf and empty fields.
_NUMBER_RE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(_NUMBER_RE)
_DNA = re.compile(_DNA_RE)

DEFAULT_BLOCK_SIZE = 8 << 20  # bytes of text per parsed block


@dataclass(frozen=True)
class RowRules:
    """What a valid row looks like.

    min_length, max_length: inclusive bounds on the sequence length in bp (default 80-150;
        DREAM 2022 sequences are nominally 110 bp, observed 87-135).
    """

    min_length: int = 80
    max_length: int = 150

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise DataError(
                f"sequence length bounds must satisfy 1 <= min <= max, "
                f"got min={self.min_length}, max={self.max_length}"
            )


class _HashingReader(io.RawIOBase):
    """A read-only file wrapper that feeds every byte read into a sha256."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def file_sha256(path: str | os.PathLike, chunk: int = 4 << 20) -> str:
    """Hex sha256 of a file's bytes (compressed bytes for a `.gz`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(chunk):
            digest.update(data)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def describe_line(text: str, line_no: int, rules: RowRules) -> str | None:
    """Say what is wrong with one line of a DREAM file, or None if it is a valid row.

    This is the single source of the row error messages; the vectorised validator calls it
    only for the first bad row it finds.
    """
    text = text.rstrip("\r\n")
    if line_no == 1 and text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return "empty line; expected SEQUENCE<TAB>EXPRESSION"
    fields = text.split("\t")
    if len(fields) == 1:
        for sep, name in ((",", "a comma"), (";", "a semicolon"), (" ", "a space")):
            if sep in text:
                return (
                    f"fields are separated by {name}, expected a TAB "
                    f"(SEQUENCE<TAB>EXPRESSION): {_clip(text)!r}"
                )
        return f"expected 2 TAB-separated columns (SEQUENCE<TAB>EXPRESSION), found 1: {_clip(text)!r}"
    if len(fields) != 2:
        return (
            f"expected 2 TAB-separated columns (SEQUENCE<TAB>EXPRESSION), "
            f"found {len(fields)}: {_clip(text)!r}"
        )
    seq, expr = fields[0].strip().upper(), fields[1].strip()
    if line_no == 1 and not _NUMBER.match(expr) and not _DNA.match(seq):
        return f"looks like a header ({_clip(text)!r}); DREAM files have no header line"
    if not _DNA.match(seq):
        bad = sorted({c for c in seq if c not in DNA_ALPHABET})
        shown = "".join(bad) if bad else "(empty)"
        return f"sequence has characters other than A/C/G/T/N: {shown!r} in {_clip(seq)!r}"
    if not rules.min_length <= len(seq) <= rules.max_length:
        return (
            f"sequence length {len(seq)} is outside the allowed "
            f"{rules.min_length}-{rules.max_length} bp"
        )
    if not _NUMBER.match(expr):
        return f"expression {_clip(expr)!r} is not a finite number"
    return None


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _open_text_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        yield from fh


def first_bad_line(path: Path, rules: RowRules) -> tuple[int, str] | None:
    """Scan `path` line by line and return (line number, problem) of its first bad row."""
    for line_no, text in enumerate(_open_text_lines(path), start=1):
        problem = describe_line(text, line_no, rules)
        if problem is not None:
            return line_no, problem
    return None


def _raise_first_bad_line(path: Path, rules: RowRules, fallback: str) -> None:
    found = first_bad_line(path, rules)
    if found is None:
        raise DataError(f"{path}: {fallback}")
    line_no, problem = found
    raise DataError(f"{path}, line {line_no}: {problem}")


def _validate(batch: pa.RecordBatch, rules: RowRules) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Return (upper-cased sequences, expression strings, per-row validity mask)."""
    seq = pc.ascii_upper(pc.ascii_trim_whitespace(batch.column(0)))
    expr = pc.ascii_trim_whitespace(batch.column(1))
    length = pc.binary_length(seq)
    ok = pc.and_(
        pc.and_(pc.match_substring_regex(seq, _DNA_RE), pc.match_substring_regex(expr, _NUMBER_RE)),
        pc.and_(pc.greater_equal(length, rules.min_length), pc.less_equal(length, rules.max_length)),
    )
    return seq, expr, pc.fill_null(ok, False)


class DreamReader:
    """Stream validated blocks of a DREAM text file (plain or gzip).

    Iterating yields pyarrow Tables with columns `sequence` (upper-case string) and
    `expression` (float64). Iterate once; afterwards `sha256` holds the hex digest of the
    file's raw (for `.gz`, compressed) bytes and `skipped` the number of rows dropped by
    `skip_invalid`.

    Args:
        path: the DREAM file.
        rules: sequence-length bounds.
        skip_invalid: drop and count bad rows instead of raising.
        block_size: bytes of text parsed per block; bounds memory use.

    Raises (while iterating):
        DataError: naming the file, line and problem, for the first bad row (unless
            `skip_invalid`), an empty file, or a file that cannot be read or decompressed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        rules: RowRules = RowRules(),
        skip_invalid: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ):
        self.path = Path(path)
        self.rules = rules
        self.skip_invalid = skip_invalid
        self.block_size = block_size
        self.sha256: str | None = None
        self.skipped = 0

    def __iter__(self) -> Iterator[pa.Table]:
        path, rules = self.path, self.rules
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty; expected SEQUENCE<TAB>EXPRESSION rows")
        skipped_bad_columns = 0

        def on_invalid_row(row) -> str:
            nonlocal skipped_bad_columns
            if not self.skip_invalid:
                return "error"  # pyarrow raises ArrowInvalid; the rescan below names the line
            skipped_bad_columns += 1
            return "skip"

        raw = _HashingReader(open(path, "rb"))
        stream: pa.NativeFile = pa.PythonFile(io.BufferedReader(raw, buffer_size=1 << 20), mode="r")
        if _is_gzip(path):
            stream = pa.CompressedInputStream(stream, "gzip")
        rows_seen = 0  # rows delivered so far; equals lines read while no row was skipped
        bad_values = 0
        try:
            reader = pacsv.open_csv(stream, **_csv_options(self.block_size, on_invalid_row))
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                seq, expr, ok = _validate(batch, rules)
                n_ok = pc.sum(ok).as_py() or 0
                if n_ok < batch.num_rows:
                    if not self.skip_invalid:
                        first = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
                        line_no = rows_seen + first + 1
                        text = f"{batch.column(0)[first].as_py()}\t{batch.column(1)[first].as_py()}"
                        problem = describe_line(text, line_no, rules) or "invalid row"
                        raise DataError(f"{path}, line {line_no}: {problem}")
                    seq, expr = pc.filter(seq, ok), pc.filter(expr, ok)
                    bad_values += batch.num_rows - n_ok
                rows_seen += batch.num_rows
                yield pa.table({"sequence": seq, "expression": pc.cast(expr, pa.float64())})
            # Hash whatever the CSV reader left unread (normally nothing).
            while raw.read(1 << 20):
                pass
        except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as err:
            message = str(err)
            if "Empty CSV" in message:
                raise DataError(
                    f"{path}: file is empty; expected SEQUENCE<TAB>EXPRESSION rows"
                ) from None
            if isinstance(err, pa.ArrowInvalid) and "CSV" in message:
                _raise_first_bad_line(path, rules, f"cannot parse: {message}")
            raise DataError(f"{path}: cannot read the file ({message.splitlines()[0]})") from None
        finally:
            raw.close()
        if rows_seen == 0:
            raise DataError(f"{path}: file has no rows; expected SEQUENCE<TAB>EXPRESSION rows")
        self.skipped = bad_values + skipped_bad_columns
        self.sha256 = raw.sha256.hexdigest()


def _csv_options(block_size: int, on_invalid_row) -> dict:
    return dict(
        read_options=pacsv.ReadOptions(
            column_names=["sequence", "expression"], block_size=block_size, use_threads=True
        ),
        parse_options=pacsv.ParseOptions(
            delimiter="\t",
            quote_char=False,
            ignore_empty_lines=False,
            newlines_in_values=False,
            invalid_row_handler=on_invalid_row,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"sequence": pa.string(), "expression": pa.string()},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
