"""A worker's training rows: read once and kept, or streamed each epoch (no Ray: a stand-in
for the worker's Ray Data shard)."""

import numpy as np
import pytest

from raydream.train.config import TrainConfig
from raydream.train.loop import TrainingRows, TrialSetup, first_rows, keeps_rows, read_once
from raydream.train.steps import CODES, input_codes

from conftest import random_promoters


class FakeShard:
    """Yields numpy batches as `ray.data.DataIterator.iter_batches` does, and counts reads."""

    def __init__(self, sequences, labels):
        self.sequences, self.labels, self.reads = np.asarray(sequences, dtype=object), np.asarray(labels), 0
        self.shuffled = []

    def iter_batches(self, batch_size, batch_format="numpy", local_shuffle_buffer_size=None, local_shuffle_seed=None):
        self.reads += 1
        self.shuffled.append(local_shuffle_buffer_size is not None)
        for start in range(0, len(self.labels), batch_size):
            yield {"sequence": self.sequences[start:start + batch_size],
                   "expression": self.labels[start:start + batch_size]}


def shard(n=50, seed=0):
    return FakeShard(random_promoters(n, seed), np.arange(n, dtype=np.float64))


def labels_of(batches):
    return np.concatenate([b["expression"] for b in batches])


def test_first_rows_cuts_the_stream_and_zero_keeps_it_whole():
    batches = [{"expression": np.arange(i, i + 4)} for i in range(0, 12, 4)]
    assert labels_of(first_rows(batches, 6)).tolist() == [0, 1, 2, 3, 4, 5]
    assert labels_of(first_rows(batches, 0)).tolist() == list(range(12))
    assert labels_of(first_rows(batches, 100)).tolist() == list(range(12))


def test_kept_rows_are_read_once_and_each_epoch_is_a_seeded_permutation_of_them():
    data = shard(50)
    tcfg = TrainConfig(batch_size=8, seed=3)
    rows = TrainingRows(data, tcfg, rank=0, keep=True)
    epochs = [labels_of(rows.epoch(e)) for e in (1, 2, 3)]
    assert data.reads == 1 and data.shuffled == [False] and rows.kept
    for labels in epochs:
        assert sorted(labels.tolist()) == list(range(50))  # every row once an epoch
    assert not np.array_equal(epochs[0], epochs[1])
    again = TrainingRows(shard(50), tcfg, rank=0, keep=True)
    assert np.array_equal(labels_of(again.epoch(2)), epochs[1])  # seed, epoch and rank decide the order
    other_rank = TrainingRows(shard(50), tcfg, rank=1, keep=True)
    assert not np.array_equal(labels_of(other_rank.epoch(2)), epochs[1])


def test_kept_rows_hold_the_codes_the_model_reads_and_in_order_gives_them_back_unshuffled():
    data = shard(20)
    tcfg = TrainConfig(batch_size=6, seq_len=120, align="right", pad="plasmid")
    rows = TrainingRows(data, tcfg, rank=0, keep=True, limit=15)
    first = list(rows.epoch(1))
    assert all(CODES in b and "sequence" not in b for b in first)
    ordered = list(rows.in_order())
    assert labels_of(ordered).tolist() == list(range(15))  # the first 15 rows, in file order
    expected = input_codes({"sequence": data.sequences[:15]}, tcfg)
    assert np.array_equal(np.concatenate([b[CODES] for b in ordered]), expected)


def test_rows_not_kept_are_streamed_shuffled_every_epoch_and_cut_to_the_limit():
    data = shard(30)
    rows = TrainingRows(data, TrainConfig(batch_size=4), rank=0, keep=False, limit=10)
    for epoch in (1, 2):
        assert len(labels_of(rows.epoch(epoch))) == 10
    assert data.reads == 2 and data.shuffled == [True, True] and not rows.kept


def test_rows_are_kept_only_when_asked_and_when_they_fit_a_quarter_of_free_memory():
    tcfg = TrainConfig(seq_len=110)
    per_row = 110 + 8
    assert keeps_rows(tcfg, 1000, 4 * 1000 * per_row)
    assert not keeps_rows(tcfg, 1000, 4 * 1000 * per_row - 1)
    assert not keeps_rows(tcfg, 1000, None)
    assert not keeps_rows(TrainConfig(cache_rows=False), 1, 10**12)


def test_splits_too_large_for_the_object_store_are_left_to_each_trial(tmp_path):
    from raydream.data.prepare import prepare_synthetic

    data = tmp_path / "prepared"
    prepare_synthetic(300, data)
    setup = TrialSetup(str(data), str(tmp_path / "runs"))
    assert read_once(setup, object_store_bytes=1000.0, timeout_s=1.0) is setup  # decided before Ray is asked


def test_reading_the_splits_once_is_bounded_and_says_what_it_waited_for(tmp_path, monkeypatch):
    import threading

    import raydream.train.loop as loop
    from raydream.data.prepare import prepare_synthetic

    prepare_synthetic(300, tmp_path / "prepared")
    release = threading.Event()

    def stuck(*args, **kwargs):
        release.wait(30)
        # Released: the read ends here. (Had it gone on to the next split after this test
        # had undone its patch, the real read would have started Ray in that thread, and
        # that stray Ray instance broke a later test's ray.init.)
        raise RuntimeError("released")

    monkeypatch.setattr(loop, "split_in_store", stuck)
    setup = TrialSetup(str(tmp_path / "prepared"), str(tmp_path / "runs"))
    try:
        with pytest.raises(TimeoutError, match=r"reading the train and val splits of .*prepared into Ray's object "
                                               r"store took over 0.5 s; the cluster had .* free"):
            read_once(setup, object_store_bytes=1e12, timeout_s=0.5)
    finally:
        release.set()
        for thread in threading.enumerate():  # the read's thread, ended before the patch is undone
            if thread.name == "background-read":
                thread.join(10)
    assert not [t for t in threading.enumerate() if t.name == "background-read"]


def test_a_failed_read_is_raised_and_a_good_one_gives_every_split(tmp_path, monkeypatch):
    import raydream.train.loop as loop
    from raydream.data.prepare import prepare_synthetic

    prepare_synthetic(300, tmp_path / "prepared")
    setup = TrialSetup(str(tmp_path / "prepared"), str(tmp_path / "runs"))

    def read(data_dir, split, manifest=None, broken=False):
        if broken:
            raise OSError("shard unreadable")
        return f"{split} in the object store"

    monkeypatch.setattr(loop, "split_in_store", read)
    done = read_once(setup, object_store_bytes=1e12, timeout_s=5)
    assert done.datasets == {"train": "train in the object store", "val": "val in the object store"}
    monkeypatch.setattr(loop, "split_in_store", lambda *args: read(*args, broken=True))
    with pytest.raises(OSError, match="shard unreadable"):
        read_once(setup, object_store_bytes=1e12, timeout_s=5)


def test_a_trial_finds_its_shards_in_the_manifest_the_search_loaded_once(monkeypatch):
    from raydream.data.prepare import load_manifest, resolve_dataset
    from raydream.train.loop import TrialSetup, read_table, split_bytes

    data = resolve_dataset(None)
    manifest = load_manifest(data)

    def reloaded(*args, **kwargs):
        raise AssertionError("the manifest was loaded again")

    monkeypatch.setattr("raydream.data.prepare.load_manifest", reloaded)
    setup = TrialSetup(str(data), "unused", manifest=manifest)
    assert read_table(setup, "val", limit=5).num_rows == 5
    assert split_bytes(str(data), manifest) == (manifest["options"]["max_length"] + 16) * (
        manifest["rows"]["train"] + manifest["rows"]["val"])
