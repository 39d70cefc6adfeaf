"""Sequence encoders: plain numpy/torch functions, vectorised over a batch.

Channel order is A, C, G, T everywhere, so the complement of channel c is channel 3 - c and
the reverse complement of a one-hot tensor is a flip of both the channel and position axes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

_ONE_HOT_TABLE = np.zeros((256, 4), dtype=np.float32)
for _i, _base in enumerate(b"ACGT"):
    _ONE_HOT_TABLE[_base, _i] = 1.0
    _ONE_HOT_TABLE[_base + 32, _i] = 1.0  # lower case
_ONE_HOT_TABLE[ord("N")] = _ONE_HOT_TABLE[ord("n")] = 0.25


def to_byte_matrix(seqs: Sequence[str] | np.ndarray, length: int, align: str = "left",
                   context: str = "") -> np.ndarray:
    """Fixed-width (N, length) uint8 matrix of ASCII codes; 0 marks padding.

    Sequences longer than `length` are trimmed and shorter ones zero-padded, on the right
    (`align="left"`) or on the left (`align="right"`, which keeps the 3' ends in register).
    context: with align="right", the DNA that precedes every sequence (its 5' side): a
    row is then the last `length` bases of context + sequence, zero-padded only where both
    run out (e.g. the plasmid upstream of the DREAM insert, `raydream.data.construct`).
    """
    if align not in ("left", "right"):
        raise ValueError(f"align must be 'left' or 'right', got {align!r}")
    if context and align != "right":
        raise ValueError("a 5' context needs align='right' (left-aligned rows are padded on their 3' side)")
    arr = np.asarray(seqs)
    if arr.dtype.kind == "U" or arr.dtype == object:
        arr = np.char.encode(arr.astype(str), "ascii")
    if align == "left":
        fixed = arr.astype(f"S{length}")  # numpy trims/pads bytes strings on the right
        return fixed.view(np.uint8).reshape(len(arr), length)  # its bytes, writable, no copy
    lengths = np.char.str_len(arr)
    width = max(int(lengths.max(initial=0)), length)
    wide = np.frombuffer(arr.astype(f"S{width}").tobytes(), dtype=np.uint8).reshape(len(arr), width)
    # Shift each row right by (width - len) so sequences end at the last column.
    cols = np.arange(width)[None, :] - (width - lengths)[:, None]
    right = np.where(cols >= 0, np.take_along_axis(wide, np.clip(cols, 0, None), axis=1), 0)
    if context:  # column c < 0 of a row is base len(context) + c of the context
        before = np.frombuffer(context.encode("ascii"), dtype=np.uint8)
        at = len(before) + cols
        right = np.where((cols < 0) & (at >= 0), before[np.clip(at, 0, len(before) - 1)], right)
    return right[:, width - length :].astype(np.uint8)


def one_hot(seqs: Sequence[str] | np.ndarray, length: int, align: str = "left") -> np.ndarray:
    """One-hot encode DNA strings.

    Args:
        seqs: N strings over A/C/G/T/N (either case).
        length: output length L; longer sequences are trimmed, shorter ones zero-padded.
        align: "left" pads/trims on the right, "right" on the left.
    Returns:
        float32 array (N, 4, L), channels A, C, G, T; N is 0.25 in each channel, padding and
        any other character all zeros.
    """
    return one_hot_codes(to_byte_matrix(seqs, length, align))


def one_hot_codes(codes: np.ndarray) -> np.ndarray:
    """One-hot (N, 4, L) float32 of an (N, L) uint8 matrix from `to_byte_matrix`."""
    return np.ascontiguousarray(_ONE_HOT_TABLE[codes].transpose(0, 2, 1))  # (N, L, 4) -> (N, 4, L)


_ONE_HOT_TABLES: dict[torch.device, torch.Tensor] = {}  # _ONE_HOT_TABLE on each device used


def one_hot_tensor(codes: torch.Tensor) -> torch.Tensor:
    """One-hot (N, 4, L) float32 of an (N, L) uint8 tensor from `to_byte_matrix`, computed on
    the tensor's device: a batch crosses to a GPU as 1 byte per base instead of 16."""
    table = _ONE_HOT_TABLES.get(codes.device)
    if table is None:
        table = _ONE_HOT_TABLES[codes.device] = torch.from_numpy(_ONE_HOT_TABLE).to(codes.device)
    return table[codes.long()].permute(0, 2, 1).contiguous()


def reverse_complement(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Reverse complement of one-hot input (..., 4, L): flip channels and positions."""
    if isinstance(x, torch.Tensor):
        return x.flip(dims=(-2, -1))
    return np.ascontiguousarray(x[..., ::-1, ::-1])


def reverse_complement_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse-complement the sequences of a (B, 4, L) batch where the (B,) bool mask is set."""
    return torch.where(mask.to(x.device)[:, None, None], reverse_complement(x), x)


def random_reverse_complement(
    x: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse-complement each sequence of a (B, 4, L) batch with probability 1/2.

    Returns the batch and the (B,) bool mask of flipped sequences.
    """
    flip = random_flips(x.shape[0], generator)
    return reverse_complement_where(x, flip), flip


def random_flips(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) bool mask, each set with probability 1/2 (drawn on the CPU, so that a seed gives
    the same augmentation on any device)."""
    return torch.rand(n, generator=generator) < 0.5


def add_flag_channels(x: torch.Tensor, *flags: torch.Tensor) -> torch.Tensor:
    """Append one constant channel per (B,) flag: (B, C, L) -> (B, C + len(flags), L).

    LegNet's extra inputs: "this is the reverse strand" and "the label is a whole number
    (one cell seen)"; both are 0 at prediction time.
    """
    planes = [f.to(x.device, x.dtype)[:, None, None].expand(-1, 1, x.shape[-1]) for f in flags]
    return torch.cat([x, *planes], dim=1)
