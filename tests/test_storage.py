"""Object-store locations (against a local moto S3 server) and local paths, no Ray."""

import pandas as pd
import pyarrow.fs as pafs
import pytest

from raydream.core import storage
from raydream.core.errors import DataError, run_cli

from test_results import fake_trial


def test_uri_parts_keep_the_query_at_the_end():
    uri = "s3://bucket/runs/?region=eu-west-1&endpoint_override=http://h:9000"
    assert storage.resolve(uri) == "s3://bucket/runs?region=eu-west-1&endpoint_override=http://h:9000"
    exp = storage.join(storage.resolve(uri), "resnet-1", "trial_0")
    assert exp == "s3://bucket/runs/resnet-1/trial_0?region=eu-west-1&endpoint_override=http://h:9000"
    assert storage.name(exp) == "trial_0"
    assert storage.parent(storage.parent(exp)) == storage.resolve(uri)
    assert storage.is_remote(uri) and storage.is_remote("file:///tmp/x") and not storage.is_remote("/tmp/x")
    with pytest.raises(DataError, match="a bucket has no parent"):
        storage.parent("s3://bucket")


def test_local_paths_are_plain_paths(tmp_path):
    assert storage.join(tmp_path, "a", "b") == str(tmp_path / "a" / "b")
    assert storage.resolve(tmp_path / "a" / "..") == str(tmp_path)
    assert storage.arrow_paths([str(tmp_path / "x")]) == (None, [str(tmp_path / "x")])
    written = storage.write_text(storage.join(tmp_path, "new", "f.txt"), "hello")
    assert storage.read_text(written) == "hello" and storage.is_file(written) and storage.is_dir(tmp_path / "new")


def test_text_files_and_listing_in_a_bucket(s3_uri):
    path = storage.join(s3_uri, "exp", "note.txt")
    assert not storage.is_file(path) and not storage.is_dir(storage.join(s3_uri, "exp"))
    storage.write_text(path, "résumé")
    assert storage.read_text(path) == "résumé"
    assert storage.is_file(path) and storage.is_dir(storage.join(s3_uri, "exp"))
    other = storage.join(s3_uri, "exp", "gone.txt")
    assert storage.file_sizes([path, other]) == [len("résumé".encode()), None]
    fs, paths = storage.arrow_paths([path])
    assert isinstance(fs, pafs.S3FileSystem) and paths == [storage.filesystem(path)[1]]
    with pytest.raises(DataError, match="cannot be read"):
        storage.read_text(other)


def test_an_unreachable_store_is_one_clear_error():
    with pytest.raises(DataError, match=r"s3://nowhere/x\?endpoint_override=http://127.0.0.1:9&region=us-east-1: cannot be reached"):
        storage.is_file("s3://nowhere/x?endpoint_override=http://127.0.0.1:9&region=us-east-1")
    with pytest.raises(DataError, match="not a storage location pyarrow can open"):
        storage.filesystem("nosuchscheme://bucket/x")


def test_mirror_fetches_what_is_new_and_drops_what_the_store_deleted(s3_uri, tmp_path):
    src = tmp_path / "src"
    trial = fake_trial(src, "run_a", {"train": {"lr": 0.1}}, [0.1, 0.2], checkpoint_epochs=[1, 2])
    remote = storage.join(s3_uri, "exp")
    storage.upload_dir(src, remote)
    local = storage.mirror(remote, tmp_path / "copy")
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()) == sorted(
        p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    # A local report next to the trials survives; a checkpoint deleted in the store goes;
    # an unchanged file is not fetched again; a grown one is.
    (local / "report").mkdir()
    (local / "report" / "plot.png").write_bytes(b"png")
    fs, root = storage.filesystem(remote)
    fs.delete_dir(f"{root}/run_a/checkpoint_000001")
    params = local / "run_a" / "params.json"
    before = params.stat().st_mtime_ns
    (trial / "progress.csv").write_text((trial / "progress.csv").read_text() + "3,0.3,x\n")
    storage.write_text(storage.join(remote, "run_a", "progress.csv"), (trial / "progress.csv").read_text())
    storage.mirror(remote, local)
    assert (local / "report" / "plot.png").is_file()
    assert not (local / "run_a" / "checkpoint_000001").exists() and (local / "run_a" / "checkpoint_000002").is_dir()
    assert params.stat().st_mtime_ns == before
    assert (local / "run_a" / "progress.csv").read_text() == (trial / "progress.csv").read_text()
    with pytest.raises(DataError, match="nothing stored under it"):
        storage.mirror(storage.join(s3_uri, "nope"), tmp_path / "nope")


def test_a_dataset_prepared_into_a_bucket_reads_as_the_local_one(s3_uri, dream_file, tmp_path):
    from raydream.data.prepare import (
        MANIFEST,
        PrepareOptions,
        load_manifest,
        prepare_dataset,
        read_split,
        resolve_dataset,
    )

    options = PrepareOptions(rows_per_shard=50)
    remote = storage.join(s3_uri, "datasets", "toy")
    local = tmp_path / "toy"
    assert prepare_dataset(dream_file, remote, options)["rows"] == prepare_dataset(dream_file, local, options)["rows"]
    assert resolve_dataset(remote) == remote and load_manifest(remote)["shards"] == load_manifest(local)["shards"]
    for split in ("train", "val", "test"):
        assert read_split(remote, split).equals(read_split(local, split))
    assert read_split(remote, "train", limit=7).num_rows == 7
    with pytest.raises(DataError, match="already holds files"):
        prepare_dataset(dream_file, remote, options)
    bad = tmp_path / "bad.txt"
    bad.write_text("ACGT\tnot-a-number\n")
    with pytest.raises(DataError, match="bad.txt"):
        prepare_dataset(bad, remote, options, overwrite=True)
    assert read_split(remote, "val").equals(read_split(local, "val"))  # bad input kept the dataset
    # An upload that stopped before its manifest is not a dataset; a lost shard is named.
    fs, root = storage.filesystem(remote)
    fs.delete_file(f"{root}/train/part-00000.parquet")
    with pytest.raises(DataError, match=r"train/part-00000.parquet\?endpoint_override=.*: shard listed in manifest"):
        load_manifest(remote)
    fs.delete_file(f"{root}/{MANIFEST}")
    with pytest.raises(DataError, match="not a prepared dataset"):
        resolve_dataset(remote)
    prepare_dataset(dream_file, remote, options, overwrite=True)
    assert read_split(remote, "val").equals(read_split(local, "val"))


def test_results_and_search_records_read_from_a_bucket(s3_uri, tmp_path, capsys):
    from raydream.tuning.plan import Search
    from raydream.results.record import write_record
    from raydream.results.table import main
    from raydream.tuning.space import load_space

    src = tmp_path / "exp"
    write_record(src, {"sampled_keys": ["train.lr"], "max_epochs": 2})
    for i, r2s in enumerate([[0.1, 0.2], [0.5, 0.4]]):
        fake_trial(src, f"run_{i}", {"train": {"lr": 0.1 * (i + 1)}}, r2s, checkpoint_epochs=[1])
    remote = storage.join(s3_uri, "results", "exp")
    storage.upload_dir(src, remote)
    assert main([str(src)]) == 0
    local_out = capsys.readouterr().out
    assert main([f"file://{src}"]) == 0  # any URI pyarrow resolves is read through a mirror
    assert capsys.readouterr().out == local_out
    assert storage.local_mirror_dir(f"file://{src}", tmp_path / "cache") == tmp_path / "cache" / "mirrors" / "file" / str(
        src).lstrip("/")
    assert main([remote, "--csv", str(tmp_path / "t.csv")]) == 0
    captured = capsys.readouterr()
    assert captured.out == local_out and f"{remote} copied to" in captured.err
    assert pd.read_csv(tmp_path / "t.csv")["checkpoint"].dropna().str.contains("/mirrors/s3/raydream-").all()
    assert run_cli(main, [storage.join(s3_uri, "results", "missing")]) == 2
    assert "nothing stored under it" in capsys.readouterr().err

    search = Search(space=load_space("cnn"), data="s3://data/x", experiment_dir=storage.join(s3_uri, "searches",
                    "b1"), num_samples=2, max_epochs=2, grace_period=1, reduction_factor=2)
    search.write()
    again = Search.read(search.experiment_dir)
    assert again.to_record() == search.to_record() and again.experiment_dir == search.experiment_dir


def test_a_search_into_an_unreachable_store_stops_before_ray_starts(capsys):
    from raydream.tuning.tuner import main

    bad = "s3://nowhere/runs?endpoint_override=http://127.0.0.1:9&region=us-east-1"
    assert run_cli(main, ["--smoke", "--storage-path", bad, "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert "s3://nowhere/runs/x/tuner.pkl?endpoint_override=http://127.0.0.1:9&region=us-east-1: cannot be reached" in err
    assert "Traceback" not in err
