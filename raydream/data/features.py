"""Tabular sequence features for tree models; plain numpy, vectorised over sequences.

- k-mer counts in windows (the team report's "k-merisation"): for each window of `window`
  bp moved by `stride` bp, the count of each of the 4^k k-mers (k-mers containing N or
  padding are not counted);
- positional one-hot (4 x L, N = 0.25);
- GC fraction;
- melting temperature by the basic GC formula Tm = 64.9 + 41 (nG + nC - 16.4) / length
  (deg C; Marmur & Doty 1962, as OligoCalc's "basic" Tm), without salt correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from raydream.data.encode import one_hot_codes, to_byte_matrix

_BASE_CODE = np.full(256, -1, dtype=np.int64)
for _i, _b in enumerate(b"ACGT"):
    _BASE_CODE[_b] = _i
    _BASE_CODE[_b + 32] = _i


# Basic melting-temperature formula: Tm = TM_BASE + TM_SLOPE * (nG + nC - TM_GC_OFFSET) / length.
TM_BASE, TM_SLOPE, TM_GC_OFFSET = 64.9, 41.0, 16.4


def basic_tm(gc_count, length):
    """Basic-formula melting temperature from G+C counts and lengths (numpy or torch)."""
    return TM_BASE + TM_SLOPE * (gc_count - TM_GC_OFFSET) / length


@dataclass(frozen=True)
class FeatureConfig:
    seq_len: int = 110  # sequences are trimmed/padded to this length first
    k: int = 4  # k-mer length (4^k features per window)
    window: int = 110  # window width, bp; = seq_len counts k-mers over the whole sequence
    stride: int = 110  # window step, bp
    positional: bool = False  # add the 4 x seq_len positional one-hot
    gc: bool = True  # add the GC fraction
    tm: bool = True  # add the melting temperature

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 8:
            raise ValueError(f"k must be in 1..8, got {self.k}")
        if not self.k <= self.window <= self.seq_len:
            raise ValueError(f"window must be in k..seq_len ({self.k}..{self.seq_len}), got {self.window}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")

    @property
    def window_starts(self) -> range:
        return range(0, self.seq_len - self.window + 1, self.stride)


def _kmer_index(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-mer starting at each position of (N, L) uint8 sequences, as a base-4 number
    (A=0, C=1, G=2, T=3, first base most significant), (N, L - k + 1) int64; and whether it
    is a real k-mer (no N, no padding), same shape."""
    n, length = codes.shape
    base = _BASE_CODE[codes]  # (N, L), -1 for N / padding
    n_pos = max(length - k + 1, 0)
    index = np.zeros((n, n_pos), dtype=np.int64)
    valid = np.ones((n, n_pos), dtype=bool)
    for offset in range(k):
        b = base[:, offset : offset + n_pos]
        index = index * 4 + np.maximum(b, 0)
        valid &= b >= 0
    return index, valid


def kmer_counts(codes: np.ndarray, k: int, window: int, stride: int) -> np.ndarray:
    """Windowed k-mer counts of (N, L) uint8 sequences -> float32 (N, n_windows * 4^k).

    Column w * 4^k + j counts k-mer j (base-4 number of A=0, C=1, G=2, T=3, first base most
    significant) starting inside window w, i.e. at positions w*stride .. w*stride+window-k.
    """
    n, length = codes.shape
    index, valid = _kmer_index(codes, k)
    vocab = 4**k
    starts = range(0, length - window + 1, stride)
    out = np.zeros((n, len(starts) * vocab), dtype=np.float32)
    rows = np.arange(n)[:, None]
    for w, start in enumerate(starts):
        span = slice(start, start + window - k + 1)
        flat = (rows * vocab + index[:, span])[valid[:, span]]  # (row, k-mer) pairs in window
        out[:, w * vocab : (w + 1) * vocab] = np.bincount(flat, minlength=n * vocab).reshape(n, vocab)
    return out


def kmer_count_matrix(codes: np.ndarray, ks: Sequence[int]) -> "scipy.sparse.csr_matrix":
    """Whole-sequence k-mer counts of (N, L) uint8 sequences for each k in `ks`, as one sparse
    float32 matrix (N, sum of 4^k): the columns of k = ks[0] first, each block ordered as in
    `kmer_counts`. A 110 bp sequence has at most 110 - k + 1 k-mers of each k, so the matrix
    stays small where the dense one (5,460 columns for k = 1..6) would not."""
    from scipy import sparse

    n = len(codes)
    blocks = []
    for k in ks:
        index, valid = _kmer_index(codes, k)
        rows = np.broadcast_to(np.arange(n)[:, None], index.shape)[valid]
        counts = sparse.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, index[valid])), shape=(n, 4**k))
        blocks.append(counts.tocsr())  # duplicate (row, k-mer) pairs are summed
    return sparse.hstack(blocks, format="csr")


def gc_fraction(codes: np.ndarray) -> np.ndarray:
    """GC fraction of each (N, L) uint8 sequence over its real (non-padding) length."""
    upper = codes & 0xDF
    gc = ((upper == ord("G")) | (upper == ord("C"))).sum(axis=1)
    length = (codes != 0).sum(axis=1)
    return (gc / np.maximum(length, 1)).astype(np.float32)


def melting_temperature(codes: np.ndarray) -> np.ndarray:
    """Basic-formula melting temperature (deg C) of each (N, L) uint8 sequence."""
    upper = codes & 0xDF
    gc = ((upper == ord("G")) | (upper == ord("C"))).sum(axis=1)
    length = np.maximum((codes != 0).sum(axis=1), 1)
    return basic_tm(gc, length).astype(np.float32)


def feature_names(config: FeatureConfig) -> list[str]:
    """Column names of `sequence_features(..., config)`, in order."""
    k = config.k
    kmers = ["".join("ACGT"[(j >> (2 * (k - 1 - i))) & 3] for i in range(k)) for j in range(4**k)]
    names = [f"w{start}_{kmer}" for start in config.window_starts for kmer in kmers]
    if config.positional:
        names += [f"pos{p}_{b}" for b in "ACGT" for p in range(config.seq_len)]
    if config.gc:
        names.append("gc")
    if config.tm:
        names.append("tm")
    return names


def sequence_features(seqs: Sequence[str] | np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Feature matrix float32 (N, len(feature_names(config)))."""
    return code_features(to_byte_matrix(seqs, config.seq_len), config)


def code_features(codes: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """`sequence_features` of sequences already in `to_byte_matrix` form (N, config.seq_len)."""
    parts = [kmer_counts(codes, config.k, config.window, config.stride)]
    if config.positional:
        parts.append(one_hot_codes(codes).reshape(len(codes), -1))
    if config.gc:
        parts.append(gc_fraction(codes)[:, None])
    if config.tm:
        parts.append(melting_temperature(codes)[:, None])
    return np.concatenate(parts, axis=1)
