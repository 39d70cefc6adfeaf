"""Synthetic DREAM-like libraries with a known answer.

Each sequence is the real 17 bp + 80 bp random + 13 bp construct. Its latent expression is
a planted function of yeast-like motifs in the random region: position- and
orientation-dependent effects, one cooperative pair and a GC-content effect. It is then
measured the way the assay measures it: a Poisson number of cells (at least one) is sorted
into 18 bins (0-17) with per-cell noise, and the value is the mean bin of those cells, so
sequences seen in one cell get whole numbers.

Because the measurement model is known, so is the best any predictor can do: the expected
measurement given the sequence, E[value | seq], computed exactly from the bin
probabilities. Its R^2 against the measured values is the noise ceiling.

Motif consensus sequences are textbook yeast regulators (TATA box, Reb1, Rap1, Gcn4, a
poly(dA:dT) tract); the effect sizes are invented for the benchmark, not fitted to data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import r2_score

from raydream.data.construct import LEFT_FLANK, RANDOM_LENGTH, RIGHT_FLANK, reverse_complement_text

NUM_BINS = 18  # bins 0..17


@dataclass(frozen=True)
class Motif:
    """A planted motif.

    effect: change of latent expression (bins) per occurrence.
    both_strands: whether the reverse complement counts too (else forward strand only).
    position_slope: effect multiplier goes linearly from (1 - slope) at the 5' end of the
        random region to (1 + slope) at its 3' end, nearer the transcription start.
    """

    name: str
    consensus: str
    effect: float
    both_strands: bool = True
    position_slope: float = 0.0


MOTIFS = (
    Motif("TATA", "TATAAAAG", 2.0, both_strands=False, position_slope=0.5),
    Motif("Reb1", "TTACCCGG", 1.5),
    Motif("Rap1", "ACACCCATACAT", 1.8, position_slope=0.3),
    Motif("Gcn4", "TGACTCA", 1.2, position_slope=-0.4),
    Motif("polyT", "TTTTTTTTTT", 0.8, both_strands=True),
)
COOPERATIVE_PAIR = ("Reb1", "Rap1", 1.5)  # extra effect when both occur in one sequence
BASELINE = 7.0  # latent expression of a motif-free sequence with average GC, in bins
GC_EFFECT = -12.0  # per unit squared deviation of GC fraction from 0.42
GC_OPTIMUM = 0.42
PLANT_PROBABILITY = 0.3  # chance that each motif is inserted once into a sequence


@dataclass(frozen=True)
class MeasurementModel:
    """How the assay reads latent expression.

    cell_sd: per-cell noise (bins) around the latent value before binning.
    mean_extra_cells: cells seen = 1 + Poisson(mean_extra_cells).
    """

    cell_sd: float = 1.2
    mean_extra_cells: float = 1.5


def _count_matches(codes: np.ndarray, motif: str) -> np.ndarray:
    """(N, positions) boolean: motif starts at each position of each (N, L) byte row."""
    m = np.frombuffer(motif.encode(), dtype=np.uint8)
    n_pos = codes.shape[1] - len(m) + 1
    hit = np.ones((codes.shape[0], n_pos), dtype=bool)
    for offset, base in enumerate(m):
        hit &= codes[:, offset : offset + n_pos] == base
    return hit


def latent_expression(random_regions: np.ndarray) -> np.ndarray:
    """Planted latent expression (bins, float64) of (N, 80) uint8 random regions."""
    n, length = random_regions.shape
    value = np.full(n, BASELINE)
    present = {}
    for motif in MOTIFS:
        strands = [motif.consensus]
        if motif.both_strands and reverse_complement_text(motif.consensus) != motif.consensus:
            strands.append(reverse_complement_text(motif.consensus))
        weight = np.zeros(n)
        for strand in strands:
            hits = _count_matches(random_regions, strand)
            centre = (np.arange(hits.shape[1]) + len(strand) / 2) / length  # 0 (5') .. 1 (3')
            weight += hits @ (1.0 + motif.position_slope * (2.0 * centre - 1.0))
        value += motif.effect * weight
        present[motif.name] = weight > 0
    a, b, extra = COOPERATIVE_PAIR
    value += extra * (present[a] & present[b])
    gc = np.isin(random_regions, np.frombuffer(b"GC", dtype=np.uint8)).mean(axis=1)
    value += GC_EFFECT * (gc - GC_OPTIMUM) ** 2
    return value


def _bin_probabilities(latent: np.ndarray, model: MeasurementModel) -> np.ndarray:
    """(N, 18) probability that one cell lands in each bin (edge bins take the tails)."""
    edges = np.arange(NUM_BINS - 1) + 0.5  # boundaries between bins 0|1 ... 16|17
    cdf = stats.norm.cdf((edges[None, :] - latent[:, None]) / model.cell_sd)
    cdf = np.concatenate([np.zeros((len(latent), 1)), cdf, np.ones((len(latent), 1))], axis=1)
    return np.diff(cdf, axis=1)


@dataclass
class Library:
    """A generated library: sequences, measured values, E[value | sequence], latent values."""

    sequences: list[str]
    measured: np.ndarray
    expected: np.ndarray
    latent: np.ndarray

    @property
    def noise_ceiling_r2(self) -> float:
        """R^2 of the best possible predictor, E[value | sequence], on this library."""
        return float(r2_score(self.measured, self.expected))

    def noise_ceiling_r2_of(self, rows: np.ndarray) -> float | None:
        """The noise ceiling on a subset of rows (a boolean mask); None under two rows."""
        if int(np.count_nonzero(rows)) < 2:
            return None
        return float(r2_score(self.measured[rows], self.expected[rows]))


def generate_library(n: int, seed: int = 0, model: MeasurementModel = MeasurementModel()) -> Library:
    """N synthetic promoters measured like the DREAM assay (see module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    regions = alphabet[rng.integers(0, 4, size=(n, RANDOM_LENGTH))]
    for motif in MOTIFS:  # plant each motif in a random subset, random place and strand
        rows = np.flatnonzero(rng.random(n) < PLANT_PROBABILITY)
        starts = rng.integers(0, RANDOM_LENGTH - len(motif.consensus) + 1, size=len(rows))
        reverse = rng.random(len(rows)) < 0.5
        forward = np.frombuffer(motif.consensus.encode(), dtype=np.uint8)
        backward = np.frombuffer(reverse_complement_text(motif.consensus).encode(), dtype=np.uint8)
        for row, start, rev in zip(rows, starts, reverse):
            regions[row, start : start + len(forward)] = backward if rev else forward
    latent = latent_expression(regions)
    probs = _bin_probabilities(latent, model)
    expected = probs @ np.arange(NUM_BINS, dtype=np.float64)
    cells = 1 + rng.poisson(model.mean_extra_cells, size=n)
    # Bin of every cell: inverse-CDF sampling per cell, then the mean per sequence.
    cum = np.cumsum(probs, axis=1)
    owner = np.repeat(np.arange(n), cells)
    bins = (rng.random(len(owner))[:, None] > cum[owner]).sum(axis=1).clip(0, NUM_BINS - 1)
    measured = np.round(np.bincount(owner, weights=bins, minlength=n) / cells, 6)
    sequences = [LEFT_FLANK + row.tobytes().decode() + RIGHT_FLANK for row in regions]
    return Library(sequences, measured, expected, latent)


def _format_value(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0")


def write_dream(library: Library, path: str | os.PathLike) -> Path:
    """Write a library as a DREAM text file; whole numbers print without decimals, as in
    the challenge data."""
    path = Path(path)
    with open(path, "w") as fh:
        fh.writelines(f"{s}\t{_format_value(v)}\n" for s, v in zip(library.sequences, library.measured))
    return path


def library_summary(library: Library, seed: int, model: MeasurementModel) -> dict:
    """What a manifest records about a synthetic library."""
    return {
        "rows": len(library.sequences),
        "seed": seed,
        "noise_ceiling_r2": library.noise_ceiling_r2,
        "cell_sd": model.cell_sd,
        "mean_cells": 1 + model.mean_extra_cells,
        "motifs": [m.consensus for m in MOTIFS],
    }
