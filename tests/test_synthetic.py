"""Synthetic libraries: planted signal, assay-like measurement, exact noise ceiling."""

import numpy as np
import pytest

from raydream.data import synthetic as syn
from sklearn.metrics import r2_score

from raydream.data.prepare import load_manifest, prepare_synthetic, read_split
from raydream.core.errors import run_cli
from raydream.prepare import main as prepare_main


def region(*inserts: tuple[int, str], fill: str = "ACGT") -> np.ndarray:
    """One 80 bp random region built from a repeated filler, with motifs at given starts."""
    seq = list((fill * 40)[: syn.RANDOM_LENGTH])
    for start, motif in inserts:
        seq[start : start + len(motif)] = motif
    return np.frombuffer("".join(seq).encode(), dtype=np.uint8)[None, :]


def gc_term(r: np.ndarray) -> float:
    gc = np.isin(r, np.frombuffer(b"GC", dtype=np.uint8)).mean()
    return syn.GC_EFFECT * (gc - syn.GC_OPTIMUM) ** 2


def test_library_looks_like_dream_data_and_is_reproducible():
    lib = syn.generate_library(3000, seed=5)
    assert all(len(s) == 110 and s.startswith(syn.LEFT_FLANK) and s.endswith(syn.RIGHT_FLANK) for s in lib.sequences)
    assert lib.measured.min() >= 0 and lib.measured.max() <= 17
    whole = np.mean(lib.measured == np.floor(lib.measured))
    assert 0.3 < whole < 0.8  # one-cell sequences give whole numbers
    again = syn.generate_library(3000, seed=5)
    assert again.sequences == lib.sequences and np.array_equal(again.measured, lib.measured)
    assert not np.array_equal(syn.generate_library(3000, seed=6).measured, lib.measured)


def test_expected_value_is_the_mean_of_the_measurement():
    lib = syn.generate_library(40000, seed=1)
    residual = lib.measured - lib.expected
    assert abs(residual.mean()) < 0.02
    slope = np.polyfit(lib.expected, lib.measured, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.03)
    assert 0.6 < lib.noise_ceiling_r2 < 0.9


def test_tata_counts_only_on_the_forward_strand_and_more_near_the_3_prime_end():
    base = syn.latent_expression(region())[0] - gc_term(region())
    early = region((2, "TATAAAAG"))
    late = region((70, "TATAAAAG"))
    reverse = region((70, "CTTTTATA"))
    gain = lambda r: syn.latent_expression(r)[0] - gc_term(r) - base  # noqa: E731
    assert gain(late) > gain(early) > 0
    assert gain(reverse) == pytest.approx(0.0, abs=1e-9)


def test_reb1_and_rap1_cooperate():
    none, a, b = region(), region((5, "TTACCCGG")), region((40, "ACACCCATACAT"))
    both = region((5, "TTACCCGG"), (40, "ACACCCATACAT"))
    lat = lambda r: syn.latent_expression(r)[0] - gc_term(r)  # noqa: E731
    interaction = lat(both) - lat(a) - lat(b) + lat(none)
    assert interaction == pytest.approx(syn.COOPERATIVE_PAIR[2])


def test_prepare_synthetic_records_the_noise_ceiling(tmp_path):
    manifest = prepare_synthetic(1500, tmp_path / "syn", seed=3)
    assert manifest["rows"]["valid"] == 1500
    assert manifest["source"]["path"] == "synthetic:1500:seed=3"
    assert 0.5 < manifest["synthetic"]["noise_ceiling_r2"] < 0.95
    assert load_manifest(tmp_path / "syn")["synthetic"] == manifest["synthetic"]
    # The ceiling per split is computed on the rows the shards hold.
    library = syn.generate_library(1500, seed=3)
    expected = dict(zip(library.sequences, library.expected))
    for split, ceiling in manifest["synthetic"]["noise_ceiling_r2_by_split"].items():
        rows = read_split(tmp_path / "syn", split).to_pandas()
        assert len(rows) == manifest["rows"][split]
        assert ceiling == pytest.approx(r2_score(rows["expression"], rows["sequence"].map(expected)))


def test_cli_takes_input_or_synthetic_not_both(tmp_path, capsys):
    assert run_cli(prepare_main, ["--synthetic", "300", "--out", str(tmp_path / "s")]) == 0
    assert "noise ceiling" in capsys.readouterr().out
    assert run_cli(prepare_main, ["x.txt", "--synthetic", "10", "--out", str(tmp_path / "t")]) == 2
    assert capsys.readouterr().err == ("error: python -m raydream.prepare: give either INPUT or --synthetic N (see "
                                       "python -m raydream.prepare --help)\n")
    assert run_cli(prepare_main, ["--synthetic", "0", "--out", str(tmp_path / "t")]) == 2
    assert "--synthetic N: N must be >= 1 promoters, got 0" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
