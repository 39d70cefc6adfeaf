from collections import Counter

import numpy as np
import pytest

from raydream.data.encode import to_byte_matrix
from raydream.data.features import (
    FeatureConfig,
    feature_names,
    gc_fraction,
    kmer_count_matrix,
    kmer_counts,
    melting_temperature,
    sequence_features,
)

from conftest import random_promoters


def python_kmers(seq: str, k: int) -> Counter:
    return Counter(seq[i : i + k] for i in range(len(seq) - k + 1) if "N" not in seq[i : i + k])


def test_kmer_counts_match_a_python_count():
    seqs = random_promoters(20) + ["ACGTN" * 22]
    codes = to_byte_matrix(seqs, 110)
    counts = kmer_counts(codes, 3, 110, 110)
    names = [n.split("_")[1] for n in feature_names(FeatureConfig(k=3, gc=False, tm=False))]
    for row, seq in zip(counts, seqs):
        expected = python_kmers(seq, 3)
        assert {n: int(c) for n, c in zip(names, row) if c} == dict(expected)


def test_the_sparse_kmer_matrix_holds_each_ks_whole_sequence_counts_side_by_side():
    seqs = random_promoters(20) + ["ACGTN" * 22, "GG"]
    codes = to_byte_matrix(seqs, 110)
    matrix = kmer_count_matrix(codes, (1, 2, 6))
    assert matrix.shape == (22, 4 + 16 + 4096) and matrix.dtype == np.float32
    dense = np.concatenate([kmer_counts(codes, k, 110, 110) for k in (1, 2, 6)], axis=1)
    assert np.array_equal(matrix.toarray(), dense)
    assert matrix[21].sum() == 2 + 1  # "GG": two 1-mers, one 2-mer


def test_windows_split_the_counts_by_start_position():
    seq = "AAAA" + "C" * 12
    counts = kmer_counts(to_byte_matrix([seq], 16), 2, 8, 8)
    assert counts.shape == (1, 2 * 16)
    aa, cc, ac = 0, 5, 1  # base-4 indices: A=0, C=1
    assert counts[0, aa] == 3 and counts[0, ac] == 1 and counts[0, cc] == 3  # window 0: AAAACCCC
    assert counts[0, 16 + cc] == 7  # window 1: CCCCCCCC


def test_gc_and_melting_temperature():
    codes = to_byte_matrix(["GGCCAATT", "gcgc", "ATAT"], 8)
    np.testing.assert_allclose(gc_fraction(codes), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(melting_temperature(codes)[0], 64.9 + 41 * (4 - 16.4) / 8, rtol=1e-6)


def test_feature_matrix_matches_its_names():
    cfg = FeatureConfig(k=2, window=50, stride=30, positional=True)
    x = sequence_features(random_promoters(5), cfg)
    assert x.shape == (5, len(feature_names(cfg)))
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert feature_names(cfg)[-2:] == ["gc", "tm"]


def test_bad_feature_config():
    with pytest.raises(ValueError, match="window"):
        FeatureConfig(k=4, window=2)
