"""Deterministic train/validation/test assignment by a strand-symmetric sequence hash.

A sequence and its reverse complement describe the same DNA molecule, so they must never
straddle two splits (a model that has seen one has effectively seen the other). The split
key is `h(seq) + h(revcomp(seq))`, which is the same for both strands, mixed through the
splitmix64 finaliser and turned into a uniform number in [0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raydream.errors import DataError

SPLITS = ("train", "val", "test")

_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in zip(b"ACGTN", b"TGCAN"):
    _COMPLEMENT[_a] = _b


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of sequences in the validation and test splits; the rest is training."""

    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        if not (0 <= self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise DataError(
                f"split fractions must be >= 0 and leave some training data, "
                f"got val={self.val}, test={self.test}"
            )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _word_weights(n_words: int) -> np.ndarray:
    # One odd 64-bit weight per 8-byte word; fixed forever so splits never move.
    return _splitmix64(np.arange(n_words, dtype=np.uint64)) | np.uint64(1)


def _padded_matrix(seqs: pa.Array, width: int, align: str) -> np.ndarray:
    """(N, width) uint8 matrix of ASCII strings, zero-padded on the right ("left" align)
    or on the left ("right" align)."""
    pad = pc.ascii_rpad if align == "left" else pc.ascii_lpad
    padded = pad(seqs, width=width, padding="\x00")
    padded = pa.concat_arrays([padded]) if padded.offset else padded
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8, count=len(seqs) * width)
    return data.reshape(len(seqs), width)


def _position_hash(mat: np.ndarray) -> np.ndarray:
    words = np.ascontiguousarray(mat).view("<u8")  # (N, width / 8)
    with np.errstate(over="ignore"):
        return (words * _word_weights(words.shape[1])).sum(axis=1, dtype=np.uint64)


def split_uniform(seqs: pa.Array, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per sequence, identical for a sequence and its reverse complement.

    Args:
        seqs: upper-case DNA strings (pyarrow string array).
        seed: changes the assignment as a whole.
    Returns:
        float64 array, shape (N,).
    """
    if len(seqs) == 0:
        return np.zeros(0)
    max_len = pc.max(pc.binary_length(seqs)).as_py()
    width = -(-max_len // 8) * 8
    fwd = _position_hash(_padded_matrix(seqs, width, "left"))
    # Reversing a right-aligned row gives the reverse strand left-aligned: no string copies.
    rev = _position_hash(_COMPLEMENT[_padded_matrix(seqs, width, "right")[:, ::-1]])
    with np.errstate(over="ignore"):
        key = _splitmix64(fwd + rev + np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(seqs: pa.Array, fractions: SplitFractions, seed: int = 0) -> np.ndarray:
    """Split index per sequence: 0 = train, 1 = val, 2 = test (see `SPLITS`)."""
    u = split_uniform(seqs, seed)
    out = np.zeros(len(u), dtype=np.int8)
    out[u < fractions.val + fractions.test] = 2
    out[u < fractions.val] = 1
    return out
