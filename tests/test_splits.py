import numpy as np
import pyarrow as pa
import pytest

from raydream.data.splits import SplitFractions, assign_splits, split_uniform
from raydream.errors import DataError

from conftest import random_promoters

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def test_a_sequence_and_its_reverse_complement_share_a_split():
    seqs = random_promoters(500) + ["ACGTNNAC", "A" * 90 + "C"]
    rcs = [s.translate(COMPLEMENT)[::-1] for s in seqs]
    np.testing.assert_array_equal(split_uniform(pa.array(seqs)), split_uniform(pa.array(rcs)))


def test_split_is_deterministic_independent_of_batching_and_seedable():
    seqs = random_promoters(3000)
    whole = split_uniform(pa.array(seqs))
    parts = np.concatenate([split_uniform(pa.array(seqs[:7])), split_uniform(pa.array(seqs[7:]))])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, split_uniform(pa.array(seqs), seed=1))
    assert ((0 <= whole) & (whole < 1)).all()


def test_split_fractions_are_respected():
    splits = assign_splits(pa.array(random_promoters(20000)), SplitFractions(val=0.1, test=0.2))
    counts = np.bincount(splits, minlength=3) / len(splits)
    np.testing.assert_allclose(counts, [0.7, 0.1, 0.2], atol=0.015)


@pytest.mark.parametrize("val,test", [(-0.1, 0.1), (0.6, 0.5), (1.0, 0.0)])
def test_bad_fractions_are_rejected(val, test):
    with pytest.raises(DataError, match="fractions"):
        SplitFractions(val, test)
