"""Ingestion: DREAM text -> validated shards + manifest; every bad input gets one clear error."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from raydream.data.dream import DreamReader, RowRules
from raydream.data.prepare import (
    PrepareOptions,
    default_data_file,
    load_manifest,
    prepare_dataset,
    read_split,
    resolve_dataset,
    split_files,
)
from raydream.data.splits import SPLITS, SplitFractions
from raydream.core.errors import DataError

from conftest import random_promoters, write_dream

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "dream_sample_train.txt"
GOOD = random_promoters(3)


def read_split(root: Path, split: str):
    return pq.read_table(split_files(root, split))


def test_embedded_sample_prepares_and_row_counts_add_up(tmp_path):
    out = tmp_path / "ds"
    manifest = prepare_dataset(default_data_file(), out)
    rows = manifest["rows"]
    assert rows["read"] == rows["valid"] == 6370 and rows["skipped"] == 0
    assert rows["train"] + rows["val"] + rows["test"] == 6370
    for split in ("train", "val", "test"):
        assert read_split(out, split).num_rows == rows[split]
    assert 0.75 < rows["train"] / 6370 < 0.85
    assert sum(manifest["length_histogram"].values()) == 6370
    assert manifest["length_histogram"]["110"] == 5219
    assert 0 < manifest["expression"]["whole_number_fraction"] < 1
    assert manifest["expression"]["quantiles"]["0.0"] >= 0
    assert manifest["expression"]["quantiles"]["1.0"] <= 17
    assert len(manifest["source"]["sha256"]) == 64
    assert load_manifest(out) == json.loads((out / "manifest.json").read_text())


@pytest.mark.skipif(not SHARED_SAMPLE.exists(), reason="shared sample not beside the checkout")
def test_embedded_sample_is_the_shared_sample(tmp_path):
    plain = prepare_dataset(SHARED_SAMPLE, tmp_path / "plain")
    packed = prepare_dataset(default_data_file(), tmp_path / "packed")
    assert plain["rows"] == packed["rows"]
    assert plain["length_histogram"] == packed["length_histogram"]


def test_values_survive_exactly_and_lowercase_is_upper_cased(tmp_path):
    seqs = [s.lower() if i % 2 else s for i, s in enumerate(random_promoters(50))]
    values = np.round(np.linspace(0, 17, 50), 6)
    src = write_dream(tmp_path / "in.txt", seqs, values)
    out = tmp_path / "ds"
    prepare_dataset(src, out, PrepareOptions(rows_per_shard=7))
    table = pq.read_table([*split_files(out, "train"), *split_files(out, "val"), *split_files(out, "test")])
    got = dict(zip(table.column("sequence").to_pylist(), table.column("expression").to_pylist()))
    assert got == {s.upper(): v for s, v in zip(seqs, values)}
    assert len(load_manifest(out)["shards"]["train"]) > 1  # sharded by rows_per_shard


def test_gzip_and_crlf_inputs_are_accepted(tmp_path):
    text = "".join(f"{s}\t{i}.5\r\n" for i, s in enumerate(random_promoters(20)))
    gz = tmp_path / "in.txt.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    manifest = prepare_dataset(gz, tmp_path / "ds")
    assert manifest["rows"]["valid"] == 20
    assert manifest["expression"]["whole_number_fraction"] == 0


def test_skip_invalid_counts_bad_rows(tmp_path):
    lines = [f"{GOOD[0]}\t1", f"{GOOD[1]}X\t2", "ACGT\t3", f"{GOOD[2]}\tnan", f"{GOOD[0]},4", f"{GOOD[1]}\t5"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    manifest = prepare_dataset(src, tmp_path / "ds", PrepareOptions(skip_invalid=True))
    assert manifest["rows"]["valid"] == 2
    assert manifest["rows"]["skipped"] == 4
    assert manifest["rows"]["read"] == 6


# Every malformed DREAM file, as files: tests/data/bad/ and tests/test_bad_inputs.py.


def test_existing_output_is_kept_unless_overwrite(tmp_path, dream_file):
    out = tmp_path / "ds"
    prepare_dataset(dream_file, out)
    with pytest.raises(DataError, match="already exists"):
        prepare_dataset(dream_file, out)
    manifest = prepare_dataset(dream_file, out, PrepareOptions(fractions=SplitFractions(0.2, 0.2)), overwrite=True)
    assert load_manifest(out)["options"]["val_fraction"] == 0.2 == manifest["options"]["val_fraction"]


def test_a_signal_just_after_a_step_of_writing_the_dataset_leaves_nothing_partial(tmp_path, dream_file, monkeypatch):
    # A signal lands at the next bytecode: here, right after a directory is made or renamed.
    import os
    from pathlib import Path

    import raydream.data.prepare as prepare

    class Signal(BaseException):
        pass

    out = tmp_path / "ds"
    real_mkdir, real_rename = Path.mkdir, os.rename

    def mkdir_then_signal(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if self.name.startswith(".ds.tmp-"):
            raise Signal

    monkeypatch.setattr(Path, "mkdir", mkdir_then_signal)
    with pytest.raises(Signal):
        prepare_dataset(dream_file, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [dream_file.name]
    monkeypatch.undo()

    prepare_dataset(dream_file, out)
    kept = (out / "manifest.json").read_text()
    renames = []

    def rename_then_signal(src, dst):
        real_rename(src, dst)
        renames.append(dst)
        if len(renames) == 1:  # the dataset --overwrite replaces is moved aside, the new one not yet in
            raise Signal

    monkeypatch.setattr(prepare.os, "rename", rename_then_signal)
    with pytest.raises(Signal):
        prepare_dataset(dream_file, out, PrepareOptions(fractions=SplitFractions(0.2, 0.2)), overwrite=True)
    assert (out / "manifest.json").read_text() == kept  # put back
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dream_file.name, "ds"])


def test_length_bounds_are_configurable(tmp_path):
    src = tmp_path / "short.txt"
    src.write_text("ACGTACGTAC\t1\nACGTACGTACGT\t2\n")
    reader = DreamReader(src, RowRules(min_length=10, max_length=12))
    assert sum(t.num_rows for t in reader) == 2
    with pytest.raises(DataError, match="min <= max"):
        RowRules(20, 10)


def test_resolve_dataset_prepares_once_and_reuses(tmp_path, dream_file, isolated_cache):
    first = resolve_dataset(dream_file)
    assert first.parent == isolated_cache / "datasets"
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert resolve_dataset(dream_file) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    assert resolve_dataset(first) == first  # a prepared directory is used as is
    # A copy split by an older rule (whole sequences) is prepared again.
    manifest = json.loads((first / "manifest.json").read_text())
    del manifest["options"]["split_by"]
    (first / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_dataset(dream_file) == first
    assert json.loads((first / "manifest.json").read_text())["options"]["split_by"] == "core"
    with pytest.raises(DataError, match="not a prepared dataset"):
        resolve_dataset(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        resolve_dataset(tmp_path / "missing.txt")


def test_missing_shard_is_reported(tmp_path, dream_file):
    out = tmp_path / "ds"
    prepare_dataset(dream_file, out)
    (out / "val" / "part-00000.parquet").unlink()
    with pytest.raises(DataError, match="shard listed in manifest.json is missing"):
        load_manifest(out)


def test_cli_runs_as_a_module(tmp_path, dream_file):
    out = tmp_path / "ds"
    done = subprocess.run(
        [sys.executable, "-m", "raydream.prepare", str(dream_file), "--out", str(out), "--val-fraction", "0.25"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "200 rows" in done.stdout
    assert load_manifest(out)["options"]["val_fraction"] == 0.25
    assert load_manifest(out)["options"]["split_by"] == "core"


def test_split_by_sequence_keeps_a_truncated_copy_apart_and_core_does_not(tmp_path):
    # 300 promoters and a copy of each with 4 bases of the left flank cut: by core every copy
    # lands in its original's split; by whole sequence about 80% do (independent draws).
    seqs = random_promoters(300, seed=9)
    source = write_dream(tmp_path / "copies.txt", seqs + [s[4:] for s in seqs], [1.0] * 600)
    placed = {}
    for split_by in ("core", "sequence"):
        out = tmp_path / split_by
        prepare_dataset(source, out, PrepareOptions(split_by=split_by))
        assert load_manifest(out)["options"]["split_by"] == split_by
        placed[split_by] = {s: name for name in SPLITS for s in read_split(out, name).column("sequence").to_pylist()}
    for split_by, where in placed.items():
        same = np.mean([where[s] == where[s[4:]] for s in seqs])
        assert same == 1.0 if split_by == "core" else same < 0.9, (split_by, same)
    with pytest.raises(DataError, match="split_by must be one of core, sequence"):
        PrepareOptions(split_by="flank")


def test_row_summary_in_blocks_matches_numpy_on_all_rows():
    from raydream.data.prepare import QUANTILE_STEP, QUANTILES, RowSummary

    rng = np.random.default_rng(0)
    values = np.concatenate([np.round(rng.uniform(0, 17, 50_000), 6), rng.integers(0, 18, 30_000).astype(float)])
    values = rng.permutation(values)
    lengths = rng.integers(100, 112, len(values))
    summary = RowSummary()
    summary.add(lengths[:0], values[:0])  # an empty block is fine
    for start in range(0, len(values), 7001):
        summary.add(lengths[start:start + 7001], values[start:start + 7001])
    histogram, expression = summary.manifest_entries()
    assert histogram == {str(n): int(c) for n, c in enumerate(np.bincount(lengths)) if c}
    for q, exact in zip(QUANTILES, np.quantile(values, QUANTILES)):
        assert expression["quantiles"][str(q)] == pytest.approx(exact, abs=QUANTILE_STEP / 2)
    assert expression["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert expression["std"] == pytest.approx(values.std(), rel=1e-12)
    assert expression["whole_number_fraction"] == np.mean(values == np.floor(values))
