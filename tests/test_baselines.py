"""The baselines every search is compared with, fitted on a prepared dataset's splits."""

import json

import pytest

from raydream.data.prepare import resolve_dataset
from raydream.core.errors import DataError
from raydream.results.table import BASELINES_FILE, format_baselines, read_baselines
from raydream.train.baselines import KMER_KS, fit_baselines


@pytest.fixture(scope="module")
def record():
    return fit_baselines(resolve_dataset(None))


def test_a_kmer_ridge_learns_the_embedded_sample_and_the_training_mean_does_not(record):
    assert (record["fit_rows"], record["val_rows"], record["test_rows"]) == (5099, 651, 620)
    mean, ridge = record["baselines"]["training mean"], record["baselines"]["k-mer ridge"]
    assert abs(mean["val"]["r2"]) < 0.01 and mean["val"]["pearson"] is None  # undefined for a constant
    assert ridge["val"]["r2"] > 0.3 and ridge["test"]["r2"] > 0.25 and ridge["val"]["pearson"] > 0.55
    assert ridge["ks"] == list(KMER_KS)


def test_the_first_rows_of_each_split_are_the_sample_when_rows_are_capped():
    capped = fit_baselines(resolve_dataset(None), max_rows=1000)
    assert (capped["fit_rows"], capped["val_rows"], capped["test_rows"]) == (1000, 651, 620)


def test_the_record_is_plain_json_and_reads_back_with_its_lines(record, tmp_path):
    text = json.dumps(record, allow_nan=False)  # no NaN: undefined metrics are null
    (tmp_path / BASELINES_FILE).write_text(text)
    back = read_baselines(tmp_path)
    assert back == json.loads(text)
    lines = format_baselines(back).splitlines()
    assert lines[0].startswith("Baselines on the same splits (fit on 5,099 training rows")
    assert lines[1].startswith("  training mean: val r2 -0.00") and "pearson -" in lines[1]
    assert lines[2].startswith("  k-mer ridge (k = 1-6, alpha ")


def test_no_record_is_none_and_a_damaged_one_names_its_file(tmp_path):
    assert read_baselines(tmp_path) is None
    good = {"fit_rows": 3, "val_rows": 2, "test_rows": 0, "baselines": {
        "k-mer ridge": {"val": {"r2": 0.1}, "test": None, "alpha": 10.0, "ks": [1, 2]}}}
    (tmp_path / BASELINES_FILE).write_text(json.dumps(good))
    assert "k-mer ridge (k = 1-2, alpha 10): val r2 0.1000; test -" in format_baselines(read_baselines(tmp_path))
    damaged = [{"fit_rows": 3}, {**good, "val_rows": "2"}, {**good, "baselines": {"mean": []}},
               {**good, "baselines": {"mean": {"val": {}, "test": 3}}},
               {**good, "baselines": {"ridge": {"val": {}, "test": None, "alpha": 1.0}}}]
    for record in damaged:
        (tmp_path / BASELINES_FILE).write_text(json.dumps(record))
        with pytest.raises(DataError, match=f"{BASELINES_FILE}: not a baselines record \\(.+\\); the experiment"):
            read_baselines(tmp_path)
    (tmp_path / BASELINES_FILE).write_text('{"fit_rows": ')
    with pytest.raises(DataError, match="not valid JSON"):
        read_baselines(tmp_path)


def test_a_search_of_the_same_data_reads_the_baselines_fitted_before(record, monkeypatch, tmp_path):
    from raydream.data.prepare import load_manifest
    from raydream.train import baselines

    data = resolve_dataset(None)  # prepared into the suite's cache; the baselines go to a new one
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAYDREAM_CACHE", str(cache))

    fits = []

    def counted(data_dir, max_rows=baselines.MAX_ROWS):
        fits.append(max_rows)
        return record if max_rows == baselines.MAX_ROWS else fit_baselines(data_dir, max_rows)

    monkeypatch.setattr(baselines, "fit_baselines", counted)
    assert baselines.stored_baselines(data) == json.loads(json.dumps(record)) and fits == [baselines.MAX_ROWS]
    assert baselines.stored_baselines(data) == json.loads(json.dumps(record)) and len(fits) == 1  # read back
    assert len(list((cache / "baselines").glob("*.json"))) == 1
    assert baselines.stored_baselines(data, max_rows=1000)["fit_rows"] == 1000 and fits == [baselines.MAX_ROWS, 1000]
    # Other shard contents, or no checksums to tell (an older manifest): another fit.
    manifest = load_manifest(data)
    key = baselines.baselines_key(manifest, baselines.MAX_ROWS)
    changed = json.loads(json.dumps(manifest))
    changed["checksums"]["train/part-00000.parquet"]["sha256"] = "0" * 64
    assert baselines.baselines_key(changed, baselines.MAX_ROWS) not in (key, None)
    assert baselines.baselines_key({**manifest, "checksums": {}}, baselines.MAX_ROWS) is None
    # A damaged record is fitted again and replaced.
    (cache / "baselines" / f"{key}.json").write_text("{not json")
    assert baselines.stored_baselines(data)["fit_rows"] == 5099 and fits.count(baselines.MAX_ROWS) == 2
