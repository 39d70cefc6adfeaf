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

from raydream.core.errors import DataError
from raydream.core.files import require_regular_file

DNA_ALPHABET = "ACGTN"
_DNA_RE = "^[ACGTN]+$"
# A plain decimal or scientific-notation number; rejects nan/inf and empty fields.
NUMBER_RE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(NUMBER_RE)
_DNA = re.compile(_DNA_RE)

DEFAULT_BLOCK_SIZE = 8 << 20  # bytes of text per parsed block
# Expression values outside this range are refused by default (--expression-range): DREAM's
# log(YFP/RFP) bins are 0-17 and MAUDE-scale values a few units either side of 0, so a value
# beyond it is a raw intensity, a parse error or a corrupt file, not a log ratio.
DEFAULT_EXPRESSION_RANGE = (-100.0, 100.0)
_FLOAT32_MAX = 3.4028234663852886e38
# Magic bytes of compressed formats raydream does not read (gzip it does).
_OTHER_COMPRESSION = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip",
                      b"\x04\x22\x4d\x18": "lz4"}
_LONGEST_LINE = 1 << 16  # characters of one line read when naming a bad line; longer is refused as such


@dataclass(frozen=True)
class RowRules:
    """What a valid row looks like.

    min_length, max_length: inclusive bounds on the sequence length in bp (default 80-150;
        DREAM 2022 sequences are nominally 110 bp, observed 87-135).
    min_expression, max_expression: inclusive bounds on the expression value (default
        -100 to 100, see DEFAULT_EXPRESSION_RANGE); finite float32 numbers.
    """

    min_length: int = 80
    max_length: int = 150
    min_expression: float = DEFAULT_EXPRESSION_RANGE[0]
    max_expression: float = DEFAULT_EXPRESSION_RANGE[1]

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise DataError(
                f"sequence length bounds must satisfy 1 <= min <= max, "
                f"got min={self.min_length}, max={self.max_length}"
            )
        low, high = self.min_expression, self.max_expression
        if not (abs(low) <= _FLOAT32_MAX and abs(high) <= _FLOAT32_MAX and low < high):
            raise DataError(f"expression range must be two finite float32 numbers LOW < HIGH, got {low:g} {high:g}")

    def expression_problem(self, text: str) -> str | None:
        """Why an expression value (text that parses as a number) is refused, or None."""
        if not self.min_expression <= float(text) <= self.max_expression:
            return (f"expression {_clip(text)} is outside the allowed range {self.min_expression:g} to "
                    f"{self.max_expression:g} (--expression-range)")
        return None


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


def check_text_or_gzip(path: Path) -> None:
    """Refuse a file compressed in a format other than gzip, or holding NUL bytes at its
    start (a binary file), with a message saying which.

    Raises:
        DataError: naming the file and the format found.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096)
    for magic, name in _OTHER_COMPRESSION.items():
        if head.startswith(magic):
            raise DataError(f"{path}: is {name}-compressed; raydream reads plain text or gzip (.gz) files")
    if not head.startswith(b"\x1f\x8b") and b"\x00" in head:
        raise DataError(f"{path}: holds NUL bytes: a binary file, not text; expected SEQUENCE<TAB>EXPRESSION lines")


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
    if not seq:
        return "sequence has characters other than A/C/G/T/N: '(empty)' in ''"
    if problem := sequence_problem(seq, rules):
        return problem
    if not _NUMBER.match(expr):
        return f"expression {_clip(expr)!r} is not a finite number"
    return rules.expression_problem(expr)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _open_text_lines(path: Path) -> Iterator[str]:
    """The file's lines; a line longer than _LONGEST_LINE characters is cut there (it is bad
    anyway), so a file without line ends is never read into memory whole."""
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        while line := fh.readline(_LONGEST_LINE):
            yield line
            while not line.endswith("\n") and (line := fh.readline(_LONGEST_LINE)):
                pass  # the rest of an over-long line


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
    """Return (upper-cased sequences, expression values as float64, per-row validity mask)."""
    seq = pc.ascii_upper(pc.ascii_trim_whitespace(batch.column(0)))
    expr = pc.ascii_trim_whitespace(batch.column(1))
    length = pc.binary_length(seq)
    number = pc.fill_null(pc.match_substring_regex(expr, NUMBER_RE), False)
    values = pc.cast(pc.if_else(number, expr, "0"), pa.float64())  # 1e309 parses as inf: out of range
    in_range = pc.and_(pc.greater_equal(values, rules.min_expression), pc.less_equal(values, rules.max_expression))
    ok = pc.and_(
        pc.and_(pc.match_substring_regex(seq, _DNA_RE), pc.and_(number, in_range)),
        pc.and_(pc.greater_equal(length, rules.min_length), pc.less_equal(length, rules.max_length)),
    )
    return seq, values, pc.fill_null(ok, False)


def read_sequence_lines(path: str | os.PathLike, rules: RowRules = RowRules()) -> list[str]:
    """Upper-cased sequences of a file with one sequence per line (plain or gzip), validated
    by the same rules as a DREAM file's sequences (A/C/G/T/N, length within the bounds).

    Raises:
        DataError: naming the file and the line of the first bad sequence, or an empty,
            binary or unreadable file.
    """
    path = require_regular_file(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; expected sequences, one per line")
    check_text_or_gzip(path)
    sequences = []
    try:
        for line_no, text in enumerate(_open_text_lines(path), start=1):
            seq = text.strip().upper()
            if line_no == 1 and seq.startswith("\ufeff"):
                seq = seq[1:]
            problem = sequence_problem(seq, rules)
            if problem:
                raise DataError(f"{path}, line {line_no}: {problem}; expected one sequence per line")
            sequences.append(seq)
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read the file ({str(err).splitlines()[0] if str(err) else err!r})") from None
    if not sequences:
        raise DataError(f"{path}: file is empty; expected sequences, one per line")
    return sequences


def sequence_problem(seq: str, rules: RowRules) -> str | None:
    """What is wrong with an upper-case sequence by `rules` (its alphabet and length), or None."""
    if not seq:
        return "empty line"
    if not _DNA.match(seq):
        bad = sorted({c for c in seq if c not in DNA_ALPHABET})
        return f"sequence has characters other than A/C/G/T/N: {''.join(bad)!r} in {_clip(seq)!r}"
    if not rules.min_length <= len(seq) <= rules.max_length:
        return f"sequence length {len(seq)} is outside the allowed {rules.min_length}-{rules.max_length} bp"
    return None


def first_line(path: str | os.PathLike) -> str:
    """The first line of a plain or gzip text file (at most _LONGEST_LINE characters)."""
    for text in _open_text_lines(Path(path)):
        return text
    return ""


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
        require_regular_file(path)
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty; expected SEQUENCE<TAB>EXPRESSION rows")
        check_text_or_gzip(path)
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
        reader = None
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
                yield pa.table({"sequence": seq, "expression": expr})
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
            # Stop pyarrow's read-ahead before the Python file under it goes away: one still
            # reading at interpreter exit aborted the process (exit 134) after a bad row.
            if reader is not None:
                reader.close()
            stream.close()
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
