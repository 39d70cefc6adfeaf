"""Deterministic train/validation/test assignment by a strand-symmetric hash of each
sequence's random region.

In the DREAM construct every measured sequence is LEFT_FLANK + 80 bp random region +
RIGHT_FLANK, and reads of one promoter differ mostly in the flanks: truncated at either end,
or with a misread flank base. The split key therefore hashes only the random core, found
between 8 bp anchors at the inner ends of the two flanks (`core_spans`), so that such copies
of one promoter land in one split; a read needs the inner 8 bp of one flank intact. A
sequence with neither anchor (not from this construct) is hashed whole. `split_by="sequence"` hashes every sequence whole.

A sequence and its reverse complement describe the same DNA molecule, so they must never
straddle two splits either: anchors are looked for on both strands, and the key is
`h(core) + h(revcomp(core))`, mixed through the splitmix64 finaliser and turned into a
uniform number in [0, 1). Copies whose random regions differ (a misread inside the core, an
indel) get independent keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raydream.data.construct import LEFT_FLANK, RANDOM_LENGTH, RIGHT_FLANK
from raydream.core.errors import DataError

SPLITS = ("train", "val", "test")
SPLIT_BY = ("core", "sequence")  # what the split key hashes; "core" is the default

ANCHOR = 8  # bases of each flank's inner end that locate the random core
ANCHOR_WINDOW = 30  # anchors are looked for in this many bases at each end

_COMPLEMENT = np.arange(256, dtype=np.uint8)
for _a, _b in zip(b"ACGTN", b"TGCAN"):
    _COMPLEMENT[_a] = _b


_COMPLEMENT_BYTES = _COMPLEMENT.tobytes()


def _revcomp(seq: str) -> str:
    return bytes(_COMPLEMENT[np.frombuffer(seq.encode(), dtype=np.uint8)][::-1]).decode()


# (anchor before the core, anchor after it) on the forward strand and on the reverse one.
_ORIENTATIONS = (
    (LEFT_FLANK[-ANCHOR:], RIGHT_FLANK[:ANCHOR]),
    (_revcomp(RIGHT_FLANK[:ANCHOR]), _revcomp(LEFT_FLANK[-ANCHOR:])),
)


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


def _windows(seqs: pa.Array, lengths: np.ndarray) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Each sequence's first and last ANCHOR_WINDOW bases, and where the last window starts."""
    head = pc.utf8_slice_codeunits(seqs, start=0, stop=ANCHOR_WINDOW)
    tail = pc.utf8_slice_codeunits(seqs, start=-ANCHOR_WINDOW)
    return head, tail, lengths - np.minimum(lengths, ANCHOR_WINDOW)


def _find(window: pa.Array, pattern: str, offset: np.ndarray | int) -> np.ndarray:
    """Where `pattern` starts in each window, as a position in the whole sequence (the window
    starts at `offset`); -1 where it is absent."""
    found = pc.find_substring(window, pattern).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(found >= 0, found + offset, -1)


def _spans(seqs: pa.Array, lengths: np.ndarray, before: str, after: str) -> tuple[np.ndarray, ...]:
    """(anchors found, start, end) of each sequence's core by one strand's pair of anchors."""
    head, tail, tail_start = _windows(seqs, lengths)
    left, right = _find(head, before, 0), _find(tail, after, tail_start)
    has_left, has_right = left >= 0, right >= 0
    # An "after" anchor that starts before the core's start is no anchor.
    has_right &= ~has_left | (right >= left + ANCHOR)
    start = np.where(has_left, left + ANCHOR, np.where(has_right, right - RANDOM_LENGTH, 0))
    end = np.where(has_right, right, np.where(has_left, start + RANDOM_LENGTH, lengths))
    found = has_left.astype(np.int8) + has_right
    return found, np.clip(start, 0, lengths), np.clip(end, 0, lengths)


def core_spans(seqs: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each sequence's random core.

    Both anchors found: the bases between them. One found: RANDOM_LENGTH bases from it
    (clipped to the sequence). None on either strand: the whole sequence. The strand with
    more anchors wins, the forward one on a tie (the reverse strand is looked at only for
    sequences without both forward anchors).
    """
    lengths = pc.binary_length(seqs).to_numpy().astype(np.int64)
    found, start, end = _spans(seqs, lengths, *_ORIENTATIONS[0])
    unsure = np.flatnonzero(found < 2)
    if len(unsure):
        other = _spans(seqs.take(pa.array(unsure)), lengths[unsure], *_ORIENTATIONS[1])
        keep = other[0] > found[unsure]
        start[unsure[keep]], end[unsure[keep]] = other[1][keep], other[2][keep]
    return start, end


def _padded_matrix(seqs: pa.Array, width: int) -> np.ndarray:
    """(N, width) uint8 matrix of ASCII strings, left-aligned and zero-padded."""
    padded = pc.ascii_rpad(seqs, width=width, padding="\x00")
    padded = pa.concat_arrays([padded]) if padded.offset else padded
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8, count=len(seqs) * width)
    return data.reshape(len(seqs), width)


def _group(values: np.ndarray, value: int) -> np.ndarray | slice:
    """The rows where `values` equals `value`: a mask, or a plain slice when it is all of them."""
    rows = values == value
    return slice(None) if rows.all() else rows


def _span_matrices(seqs: pa.Array, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's [start, end) span, and its reverse complement, left-aligned in (N, W)
    zero-padded matrices (W: the longest span, rounded up to 8 bytes). Rows are moved in
    groups of one start (and of one length for the reverse), of which there are few."""
    lengths = end - start
    full = max(1, pc.max(pc.binary_length(seqs)).as_py())
    width = max(8, -(-int(lengths.max()) // 8) * 8)
    mat = _padded_matrix(seqs, full)
    forward = np.zeros((len(start), width), dtype=np.uint8)
    for offset in np.unique(start).tolist():
        rows = _group(start, offset)
        part = mat[rows, offset:offset + width]
        forward[rows, : part.shape[1]] = part
    if lengths.min() < width:
        forward[np.arange(width)[None, :] >= lengths[:, None]] = 0
    # The reverse strand: every row reversed whole, complemented, then each group of one
    # length shifted left by the padding its reversal put in front.
    flipped = np.ascontiguousarray(forward[:, ::-1])
    flipped = np.frombuffer(flipped.tobytes().translate(_COMPLEMENT_BYTES), dtype=np.uint8).reshape(flipped.shape)
    backward = np.zeros_like(forward)
    for length in np.unique(lengths).tolist():
        rows = _group(lengths, length)
        backward[rows, :length] = flipped[rows, width - length:]
    return forward, backward


def _position_hash(mat: np.ndarray) -> np.ndarray:
    words = np.ascontiguousarray(mat).view("<u8")  # (N, width / 8)
    with np.errstate(over="ignore"):
        return (words * _word_weights(words.shape[1])).sum(axis=1, dtype=np.uint64)


def split_uniform(seqs: pa.Array, seed: int = 0, split_by: str = "core") -> np.ndarray:
    """A number in [0, 1) per sequence, identical for a sequence and its reverse complement
    and, with `split_by="core"`, for all reads of one random region.

    Args:
        seqs: upper-case DNA strings (pyarrow string array).
        seed: changes the assignment as a whole.
        split_by: "core" (the random region; see `core_spans`) or "sequence" (all of it).
    Returns:
        float64 array, shape (N,).
    """
    if split_by not in SPLIT_BY:
        raise DataError(f"split_by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}")
    if len(seqs) == 0:
        return np.zeros(0)
    if split_by == "core":
        start, end = core_spans(seqs)
    else:
        start, end = np.zeros(len(seqs), dtype=np.int64), pc.binary_length(seqs).to_numpy().astype(np.int64)
    forward, backward = _span_matrices(seqs, start, end)
    fwd, rev = _position_hash(forward), _position_hash(backward)
    with np.errstate(over="ignore"):
        key = _splitmix64(fwd + rev + np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(seqs: pa.Array, fractions: SplitFractions, seed: int = 0, split_by: str = "core") -> np.ndarray:
    """Split index per sequence: 0 = train, 1 = val, 2 = test (see `SPLITS`)."""
    u = split_uniform(seqs, seed, split_by)
    out = np.zeros(len(u), dtype=np.int8)
    out[u < fractions.val + fractions.test] = 2
    out[u < fractions.val] = 1
    return out
