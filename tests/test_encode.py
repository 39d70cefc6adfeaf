import numpy as np
import pytest
import torch

from raydream.data.encode import (
    add_flag_channels,
    one_hot,
    one_hot_tensor,
    random_reverse_complement,
    reverse_complement,
    to_byte_matrix,
)

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def python_one_hot(seq: str, length: int) -> np.ndarray:
    out = np.zeros((4, length), dtype=np.float32)
    for i, base in enumerate(seq.upper()[:length]):
        if base == "N":
            out[:, i] = 0.25
        elif base in "ACGT":
            out["ACGT".index(base), i] = 1.0
    return out


def test_one_hot_matches_per_base_definition():
    seqs = ["ACGTN", "acgtn", "AC", "GGGGGGGG"]
    x = one_hot(seqs, 6)
    assert x.shape == (4, 4, 6) and x.dtype == np.float32
    for row, seq in zip(x, seqs):
        np.testing.assert_array_equal(row, python_one_hot(seq, 6))


def test_one_hot_trims_and_pads_on_the_chosen_side():
    right = one_hot(["AACC", "ACGTTT"], 5, align="right")
    np.testing.assert_array_equal(right[0][:, 0], 0)  # padded at the start
    np.testing.assert_array_equal(right[0][:, 1:], python_one_hot("AACC", 4))
    np.testing.assert_array_equal(right[1], python_one_hot("CGTTT", 5))  # trimmed at the start
    with pytest.raises(ValueError, match="align"):
        to_byte_matrix(["A"], 3, align="middle")


def test_a_5_prime_context_fills_the_padding_of_right_aligned_rows():
    from raydream.data.encode import to_byte_matrix

    rows = to_byte_matrix(["ACGT", "GG", "ACGTACGTAC"], 6, "right", context="TTTAAC")
    assert [r.tobytes() for r in rows] == [b"ACACGT", b"TAACGG", b"GTACGTAC"[-6:]]
    short = to_byte_matrix(["GG"], 6, "right", context="AC")  # zeros where the context runs out too
    assert short.tobytes() == b"\x00\x00ACGG"
    with pytest.raises(ValueError, match="needs align='right'"):
        to_byte_matrix(["GG"], 6, "left", context="AC")


def test_plasmid_padding_reads_a_dream_sequence_in_its_construct_as_legnet_does():
    # LegNet drops the read's 17 bp left flank, puts the plasmid in front (whose last 17 bp
    # are that flank) and keeps the last 150 bp; for an intact flank that is this row.
    from raydream.data.construct import LEFT_FLANK, PLASMID_UPSTREAM, RIGHT_FLANK
    from raydream.train.config import TrainConfig
    from raydream.train.steps import encode_batch

    seq = LEFT_FLANK + "ACGT" * 20 + RIGHT_FLANK
    config = TrainConfig(seq_len=150, align="right", pad="plasmid")
    x, _ = encode_batch({"sequence": np.array([seq]), "expression": np.array([3.0])}, config, torch.device("cpu"))
    legnet = ((PLASMID_UPSTREAM + LEFT_FLANK) + seq[len(LEFT_FLANK):])[-150:]
    assert x.shape == (1, 4, 150) and torch.equal(x[0], one_hot_tensor(torch.from_numpy(
        np.frombuffer(legnet.encode(), dtype=np.uint8).copy()[None]))[0])
    with pytest.raises(ValueError, match="pad 'plasmid' fills the 5' side of right-aligned input"):
        TrainConfig(pad="plasmid")
    with pytest.raises(ValueError, match="pad must be one of zeros, plasmid"):
        TrainConfig(pad="N", align="right")


def test_reverse_complement_is_exact_and_an_involution():
    seqs = ["ACGTNA", "GATTACA"]
    x = one_hot(seqs, 7)
    rc_strings = [s.translate(COMPLEMENT)[::-1] for s in seqs]
    # The padded tail of a short sequence moves to the front of its reverse complement.
    np.testing.assert_array_equal(reverse_complement(x)[1], one_hot(rc_strings[1:], 7)[0])
    np.testing.assert_array_equal(reverse_complement(x)[0][:, 1:], one_hot(rc_strings[:1], 6)[0])
    t = torch.from_numpy(x)
    assert torch.equal(reverse_complement(reverse_complement(t)), t)
    np.testing.assert_array_equal(reverse_complement(t).numpy(), reverse_complement(x))


def test_random_reverse_complement_flips_about_half_and_keeps_the_rest():
    x = torch.from_numpy(one_hot(["ACGTTGCA" + "A" * i for i in range(400)], 16))
    g = torch.Generator().manual_seed(0)
    y, mask = random_reverse_complement(x, g)
    same = (y == x).flatten(1).all(1)
    flipped = (y == reverse_complement(x)).flatten(1).all(1)
    assert bool((same | flipped).all())
    assert torch.equal(flipped & ~same, mask & ~same)
    assert 150 < int(mask.sum()) < 250


def test_flag_channels_are_constant_planes():
    x = torch.zeros(3, 4, 5)
    y = add_flag_channels(x, torch.tensor([True, False, True]), torch.tensor([0.0, 1.0, 0.0]))
    assert y.shape == (3, 6, 5)
    assert y[:, 4, :].tolist() == [[1.0] * 5, [0.0] * 5, [1.0] * 5]
    assert y[:, 5, :].tolist() == [[0.0] * 5, [1.0] * 5, [0.0] * 5]


def test_one_hot_of_byte_codes_is_the_same_on_torch_and_numpy():
    from raydream.data.encode import one_hot_codes, one_hot_tensor

    codes = to_byte_matrix(np.array(["ACGTN", "acgtn", "AXG", ""], dtype=object), 6)
    x = one_hot_tensor(torch.from_numpy(codes))
    assert x.dtype == torch.float32 and x.is_contiguous()
    assert np.array_equal(x.numpy(), one_hot_codes(codes))
