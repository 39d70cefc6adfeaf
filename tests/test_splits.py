import numpy as np
import pyarrow as pa
import pytest

from raydream.data.construct import LEFT_FLANK, RIGHT_FLANK
from raydream.data.splits import SplitFractions, assign_splits, core_spans, split_uniform
from raydream.core.errors import DataError

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


def reads_of_one_promoter(core: str) -> list[str]:
    """Copies of one random region as a DREAM file may hold them: flanks truncated or
    misread at either end, either strand, or the bare region."""
    full = LEFT_FLANK + core + RIGHT_FLANK
    rc = lambda s: s.translate(COMPLEMENT)[::-1]
    return [full, full[3:], full[:-5], full[9:-6], full[12:], "A" + full[1:], full[:-1] + "C",
            LEFT_FLANK[:2] + "A" + LEFT_FLANK[3:] + core + RIGHT_FLANK,  # misread far from the core
            LEFT_FLANK + core + RIGHT_FLANK[:7] + "A" + RIGHT_FLANK[8:],  # misread in the right anchor
            "T" + LEFT_FLANK[:-1] + "G" + core + RIGHT_FLANK,  # misread in the left anchor
            rc(full), rc(full[4:-3]), core]


def test_reads_of_one_random_region_share_a_split_key():
    for core in [s[17:97] for s in random_promoters(20, seed=7)]:
        keys = split_uniform(pa.array(reads_of_one_promoter(core)))
        assert np.all(keys == keys[0]), keys
    start, end = core_spans(pa.array(reads_of_one_promoter("ACGT" * 20)))
    assert (end - start).tolist() == [80] * 13


def test_distinct_cores_and_whole_sequence_keys():
    seqs = random_promoters(2000, seed=3)
    keys = split_uniform(pa.array(seqs))
    assert len(np.unique(keys)) == len(seqs)
    # The same core with one base changed is another promoter.
    changed = seqs[0][:50] + ("A" if seqs[0][50] != "A" else "C") + seqs[0][51:]
    assert split_uniform(pa.array([changed]))[0] != keys[0]
    # By whole sequence, a truncated copy is another key; a sequence with no flank is hashed whole.
    by_sequence = split_uniform(pa.array([seqs[0], seqs[0][3:]]), split_by="sequence")
    assert by_sequence[0] != by_sequence[1]
    alien = "ACGTTGCA" * 12
    assert split_uniform(pa.array([alien]))[0] == split_uniform(pa.array([alien]), split_by="sequence")[0]
    with pytest.raises(DataError, match="split_by must be one of core, sequence"):
        split_uniform(pa.array(seqs[:2]), split_by="flank")
