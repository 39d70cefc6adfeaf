"""The bad-input corpus in tests/data/bad/ (see its README): every file yields one clear error
line from the command that reads it, a non-zero exit, no traceback and no output left
behind; the two accepted oddities (CRLF line ends, a UTF-8 BOM) prepare as the clean file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raydream.data.prepare import read_split
from raydream.core.errors import run_cli
from raydream.prepare import main as prepare_main
from raydream.tuning.tuner import main as tune_main

CORPUS = Path(__file__).parent / "data" / "bad"

# text/NAME -> (words in the error, line number or None), from `python -m raydream.prepare`
TEXT = {
    "empty.txt": ("file is empty", None),
    "header.txt": ("looks like a header", 1),
    "comma_separator.txt": ("separated by a comma, expected a TAB", 2),
    "space_separator.txt": ("separated by a space", 1),
    "three_columns.txt": ("found 3", 2),
    "one_column.txt": ("found 1", 2),
    "bad_character.txt": ("'X'", 3),
    "too_short.txt": ("length 8 is outside the allowed 80-150", 2),
    "too_long.txt": ("length 151 is outside the allowed 80-150", 1),
    "line_10kbp.txt": ("length 10000 is outside the allowed 80-150", 3),
    "not_a_number.txt": ("'high' is not a finite number", 2),
    "infinite.txt": ("'inf' is not a finite number", 1),
    "empty_line.txt": ("empty line", 2),
    "truncated.txt.gz": ("cannot read the file", None),
    "overflow_1e309.txt": ("expression 1e309 is outside the allowed range -100 to 100 (--expression-range)", 3),
    "huge_1e308.txt": ("expression 1e308 is outside the allowed range", 2),
    "negative_huge.txt": ("expression -250 is outside the allowed range", 4),
    "bzip2_named_gz.txt.gz": ("is bzip2-compressed; raydream reads plain text or gzip", None),
    "nul_bytes.txt": ("holds NUL bytes: a binary file, not text", None),
}

# datasets/NAME -> (file named in the error, words), from `python -m raydream.tune --data DIR`
DATASETS = {
    "missing_shard": ("train/part-00000.parquet", "shard listed in manifest.json is missing"),
    "truncated_shard": ("train/part-00000.parquet", "the shard changed after it was prepared"),
    "changed_shard": ("train/part-00000.parquet", "its sha256 no longer matches manifest.json"),
    "not_parquet": ("val/part-00000.parquet", "not a readable Parquet file"),
    "bad_manifest": ("manifest.json", "not valid JSON"),
    "overlapping_splits": ("manifest.json", "is listed in both 'train' and 'val'; the splits must be disjoint"),
    "shard_outside": ("manifest.json", "is not a path inside the dataset"),
}

# spaces/NAME -> words in the error of `python -m raydream.tune --space FILE`
SPACES = {
    "syntax_error.yaml": "YAML syntax error at line 4, column 14: expected ',' or ']'",
    "duplicate_key.yaml": "YAML error at line 5, column 3: the key 'lr' is given twice, on lines 3 and 5",
    "alias_bomb.yaml": "YAML error at line 2, column 14: an anchor (&a); anchors and aliases are not allowed",
}


def assert_one_error_line(code: int, err: str) -> None:
    """Exit status 2 and a single `error: ...` line on stderr, no traceback."""
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err


def one_error_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert_one_error_line(code, err)
    return err


def test_the_corpus_is_complete():
    assert sorted(p.name for p in (CORPUS / "text").iterdir()) == sorted([*TEXT, "crlf.txt", "utf8_bom.txt"])
    assert sorted(p.name for p in (CORPUS / "datasets").iterdir()) == sorted(DATASETS)
    assert sorted(p.name for p in (CORPUS / "spaces").iterdir()) == sorted(SPACES)


@pytest.mark.parametrize("name", sorted(TEXT))
def test_a_bad_dream_file_is_one_error_naming_it_and_leaves_nothing(name, tmp_path, capsys):
    words, line = TEXT[name]
    source, out = CORPUS / "text" / name, tmp_path / "prepared"
    err = one_error_line(capsys, run_cli(prepare_main, [str(source), "--out", str(out)]))
    assert str(source) in err and words in err
    if line is not None:
        assert f"line {line}:" in err
    assert list(tmp_path.iterdir()) == []  # no output, no temporary leftovers


@pytest.mark.parametrize("name", ["crlf.txt", "utf8_bom.txt"])
def test_crlf_line_ends_and_a_utf8_bom_are_accepted(name, tmp_path, capsys):
    clean = tmp_path / "clean.txt"
    text = (CORPUS / "text" / name).read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    clean.write_text(text)
    assert run_cli(prepare_main, [str(CORPUS / "text" / name), "--out", str(tmp_path / "odd")]) == 0
    assert run_cli(prepare_main, [str(clean), "--out", str(tmp_path / "clean")]) == 0
    capsys.readouterr()
    for split in ("train", "val", "test"):
        assert read_split(tmp_path / "odd", split).equals(read_split(tmp_path / "clean", split))
    assert read_split(tmp_path / "odd", "train").column("sequence")[0].as_py()[0] in "ACGT"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_broken_prepared_dataset_stops_a_search_before_ray_starts(name, tmp_path, capsys):
    named, words = DATASETS[name]
    dataset = CORPUS / "datasets" / name
    code = run_cli(tune_main, ["--data", str(dataset), "--smoke", "--storage-path", str(tmp_path), "--name", "x"])
    err = one_error_line(capsys, code)
    assert str(dataset / named) in err and words in err
    assert list(tmp_path.iterdir()) == []  # nothing written for the search


@pytest.mark.parametrize("name", sorted(SPACES))
def test_a_bad_space_names_its_line(name, tmp_path, capsys):
    space = CORPUS / "spaces" / name
    err = one_error_line(capsys, run_cli(tune_main, ["--space", str(space), "--smoke", "--storage-path",
                                                      str(tmp_path)]))
    assert f"{space}: {SPACES[name]}" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["raydream.prepare", str(CORPUS / "text" / "truncated.txt.gz"), "--out", "{tmp}/out"],
    ["raydream.tune", "--data", str(CORPUS / "datasets" / "changed_shard"), "--smoke", "--storage-path", "{tmp}"],
    ["raydream.tune", "--space", str(CORPUS / "spaces" / "syntax_error.yaml"), "--smoke", "--storage-path", "{tmp}"],
], ids=["prepare", "tune-data", "tune-space"])
def test_the_command_line_exits_2_with_one_line_and_no_traceback(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", *[a.format(tmp=tmp_path) for a in args]],
                          capture_output=True, text=True, timeout=120)
    assert_one_error_line(done.returncode, done.stderr)


# Every command-line entry point, given a missing, an empty, an unreadable (a FIFO, which a
# reader would wait on forever) and a foreign (binary) input where it expects a file or a
# directory: one error line, exit 2, and nothing new on disk.
FOREIGN = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
ENTRY_POINTS = {  # name -> (main, argv with {input}, whether the input is a directory)
    "prepare": ("raydream.prepare", ["{input}", "--out", "{tmp}/out"], False),
    "tune --data": ("raydream.tune", ["--data", "{input}", "--smoke", "--storage-path", "{tmp}/results"], False),
    "tune --space": ("raydream.tune", ["--space", "{input}", "--smoke", "--storage-path", "{tmp}/results"], False),
    "tune --resume": ("raydream.tune", ["--resume", "{input}"], True),
    "results": ("raydream.results.table", ["{input}"], True),
    "report": ("raydream.report", ["{input}", "--out", "{tmp}/plots"], True),
    "predict --input": ("raydream.predict", ["--checkpoint", "{checkpoint}", "--input", "{input}", "--output",
                                             "{tmp}/p.tsv"], False),
    "predict --checkpoint": ("raydream.predict", ["--checkpoint", "{input}", "--input", "{truth}", "--output",
                                                  "{tmp}/p.tsv"], True),
    "predict --experiment": ("raydream.predict", ["--experiment", "{input}", "--input", "{truth}", "--output",
                                                  "{tmp}/p.tsv"], True),
    "evaluate --pred": ("raydream.evaluate", ["--pred", "{input}", "--truth", "{truth}"], False),
    "evaluate --truth": ("raydream.evaluate", ["--pred", "{pred}", "--truth", "{input}"], False),
    "evaluate --subsets": ("raydream.evaluate", ["--pred", "{pred}", "--truth", "{truth}", "--subsets", "{input}"],
                           False),
    "explain --input": ("raydream.explain", ["--checkpoint", "{checkpoint}", "--input", "{input}", "--out",
                                             "{tmp}/explained"], False),
    "explain --variants": ("raydream.explain", ["--checkpoint", "{checkpoint}", "--input", "{truth}", "--variants",
                                                "{input}", "--out", "{tmp}/explained"], False),
    "explain --subsets": ("raydream.explain", ["--checkpoint", "{checkpoint}", "--input", "{truth}", "--subsets",
                                               "{input}", "--out", "{tmp}/explained"], False),
    "explain --checkpoint": ("raydream.explain", ["--checkpoint", "{input}", "--input", "{truth}", "--out",
                                                  "{tmp}/explained"], True),
}


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def good_inputs(tmp_path, experiment):
    from conftest import random_promoters, write_dream

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    truth = write_dream(inputs / "truth.txt", random_promoters(3, seed=5), [1.0, 2.0, 3.5])
    pred = inputs / "pred.json"
    pred.write_text('{"0": 1.5, "1": 2.0, "2": 3.0}')
    return {"truth": truth, "pred": pred, "checkpoint": experiment / "trial_1" / "checkpoint_000000"}


@pytest.mark.parametrize("kind", ["missing", "empty", "fifo", "foreign"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_missing_empty_unreadable_and_foreign_inputs(entry, kind, tmp_path, good_inputs,
                                                                             capsys):
    import importlib

    module, template, is_dir = ENTRY_POINTS[entry]
    bad = tmp_path / "inputs" / ("bad.yaml" if "space" in entry else "bad")
    if kind == "empty":
        bad.mkdir() if is_dir else bad.touch()
    elif kind == "fifo":
        os.mkfifo(bad)
    elif kind == "foreign":
        bad.write_bytes(FOREIGN)
    before = _tree(tmp_path)
    fields = {"input": bad, "tmp": tmp_path, **good_inputs}
    argv = [a.format(**fields) for a in template]
    assert_one_error_line(run_cli(importlib.import_module(module).main, argv), capsys.readouterr().err)
    assert _tree(tmp_path) == before


def _truncate_progress(exp: Path) -> str:
    path = exp / "trial_1" / "progress.csv"
    path.write_bytes(path.read_bytes()[:-4])  # a copy cut short mid-line
    return f"{path}: truncated (its last line is incomplete)"


def _bad_params(exp: Path) -> str:
    (exp / "trial_0" / "params.json").write_text('{"train": {"seed": ')
    return f"{exp / 'trial_0' / 'params.json'}: not valid JSON"


def _bad_record(exp: Path) -> str:
    (exp / "raydream_search.json").write_text("{not json")
    return f"{exp / 'raydream_search.json'}: not valid JSON"


def _bad_resolution(exp: Path) -> str:
    import json

    record = json.loads((exp / "raydream_search.json").read_text())
    (exp / "raydream_search.json").write_text(json.dumps({**record, "resolution": {"decode": "train.seed"}}))
    return f"{exp / 'raydream_search.json'}: its recorded resolution does not fit the trials' configs"


def _bad_meta(exp: Path) -> str:
    (exp / "trial_1" / "checkpoint_000000" / "meta.json").write_text('{"model": "resnet"')
    return f"{exp / 'trial_1' / 'checkpoint_000000' / 'meta.json'}: not valid JSON"


def _truncated_model(exp: Path) -> str:
    model = exp / "trial_1" / "checkpoint_000000" / "model.pt"
    model.write_bytes(model.read_bytes()[:500])
    return f"{model}: cannot be loaded"


def _foreign_weights(exp: Path) -> str:
    import json

    meta_path = exp / "trial_1" / "checkpoint_000000" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["channels"] = 16  # the file holds an 8-channel network
    meta_path.write_text(json.dumps(meta))
    return f"{exp / 'trial_1' / 'checkpoint_000000' / 'model.pt'}: its weights do not fit the resnet model"


DAMAGE = {"truncated progress.csv": _truncate_progress, "params.json": _bad_params, "search record": _bad_record,
          "recorded resolution": _bad_resolution, "meta.json": _bad_meta, "truncated model.pt": _truncated_model,
          "another model's weights": _foreign_weights}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_experiment_is_one_error_naming_the_file_in_every_reader(damage, experiment, tmp_path, capsys):
    from conftest import random_promoters

    from raydream.results.predict import main as predict_main
    from raydream.results.report import main as report_main
    from raydream.results.table import main as results_main

    words = DAMAGE[damage](experiment)
    seqs = tmp_path / "seqs.txt"
    seqs.write_text(random_promoters(1)[0] + "\n")
    readers = {"results": (results_main, [str(experiment)]),
               "predict": (predict_main, ["--experiment", str(experiment), "--input", str(seqs), "--output",
                                          str(tmp_path / "p.json")])}
    if "model" not in damage and damage != "meta.json":  # report needs a dataset to plot the checkpoint
        readers["report"] = (report_main, [str(experiment), "--out", str(tmp_path / "plots")])
    before = _tree(tmp_path)
    for name, (main, argv) in readers.items():
        code = run_cli(main, argv)
        err = capsys.readouterr().err
        if damage in ("truncated model.pt", "another model's weights") and name == "results":
            assert code == 0  # the table does not load models
            continue
        assert_one_error_line(code, err)
        assert words in err, (name, err)
    assert _tree(tmp_path) == before


def test_predictions_that_are_not_finite_numbers_and_a_one_row_truth_file_are_refused(tmp_path, capsys):
    from conftest import random_promoters, write_dream

    from raydream.results.evaluate import main as evaluate_main

    truth = write_dream(tmp_path / "truth.txt", random_promoters(2, seed=1), [1.0, 2.0])
    for value in ("true", "NaN", "null", '"1.5"', "Infinity"):
        pred = tmp_path / "pred.json"
        pred.write_text(f'{{"0": 1.0, "1": {value}}}')
        err = one_error_line(capsys, run_cli(evaluate_main, ["--pred", str(pred), "--truth", str(truth)]))
        assert f'{pred}: key "1": prediction {value if value != "NaN" else "NaN"}' in err and "not a finite number" in err
    tsv = tmp_path / "pred.tsv"
    seqs = random_promoters(2, seed=1)
    tsv.write_text(f"sequence\tprediction\n{seqs[0]}\t1.0\n{seqs[1]}\tnan\n")
    err = one_error_line(capsys, run_cli(evaluate_main, ["--pred", str(tsv), "--truth", str(truth)]))
    assert f"{tsv}: line 3: prediction 'nan' is not a finite number" in err
    one = write_dream(tmp_path / "one.txt", seqs[:1], [1.0])
    (tmp_path / "one.json").write_text('{"0": 1.0}')
    err = one_error_line(capsys, run_cli(evaluate_main, ["--pred", str(tmp_path / "one.json"), "--truth", str(one)]))
    assert f"{one}: 1 row(s); scores need at least 2 measured values" in err


def test_no_command_writes_over_its_inputs_or_what_is_not_its_output(tmp_path, experiment, capsys):
    from conftest import random_promoters, write_dream

    from raydream.results.evaluate import main as evaluate_main
    from raydream.results.report import main as report_main
    from raydream.results.table import main as results_main

    project = tmp_path / "project"
    project.mkdir()
    source = write_dream(project / "data.txt", random_promoters(30), [float(i % 17) for i in range(30)])
    (project / "notes.md").write_text("mine")
    kept = {p: p.read_bytes() for p in project.iterdir()}
    cases = [
        (prepare_main, [str(source), "--out", str(source), "--overwrite"], "would replace the input"),
        (prepare_main, [str(source), "--out", str(project), "--overwrite"], "would replace the input"),
        (prepare_main, [str(source), "--out", str(source / "sub")], f"{source} is a file, not a directory"),
        (tune_main, ["--data", str(source), "--storage-path", str(source)], "exists and is not a directory"),
        (results_main, [str(experiment), "--csv", str(experiment / "trial_0" / "params.json")],
         "would write over the experiment's own files"),
        (report_main, [str(experiment), "--out", str(source)], "exists and is not a directory"),
    ]
    pred = tmp_path / "pred.json"
    pred.write_text('{"0": 1.0, "1": 2.0}')
    truth = write_dream(tmp_path / "truth.txt", random_promoters(2, seed=1), [1.0, 2.0])
    cases.append((evaluate_main, ["--pred", str(pred), "--truth", str(truth), "--json", str(pred)], "is the input"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("not a dataset")
    cases.append((prepare_main, [str(source), "--out", str(other), "--overwrite"],
                  "exists and is not a prepared dataset"))
    for main, argv, words in cases:
        err = one_error_line(capsys, run_cli(main, argv))
        assert words in err, (argv, err)
    assert {p: p.read_bytes() for p in project.iterdir()} == kept
    assert (other / "keep.txt").read_text() == "not a dataset" and pred.read_text() == '{"0": 1.0, "1": 2.0}'
    # --overwrite does replace a dataset that prepare wrote
    assert run_cli(prepare_main, [str(source), "--out", str(tmp_path / "ds")]) == 0
    assert run_cli(prepare_main, [str(source), "--out", str(tmp_path / "ds"), "--overwrite"]) == 0


def _run_module(args: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def test_a_fifo_and_a_2_gb_file_of_nul_bytes_are_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = _run_module(["raydream.tune", "--data", str(fifo), "--smoke", "--storage-path", str(tmp_path / "r")],
                       timeout=60)
    assert_one_error_line(done.returncode, done.stderr)
    assert "is a FIFO" in done.stderr
    nul = tmp_path / "nul.txt"
    with open(nul, "wb") as fh:  # sparse: 2 GB that take no disk
        fh.truncate(2 << 30)
    done = _run_module(["raydream.prepare", str(nul), "--out", str(tmp_path / "out")], timeout=60)
    assert_one_error_line(done.returncode, done.stderr)  # not an abort (exit 134)
    assert "holds NUL bytes" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "nul.txt"]


def test_sigterm_leaves_nothing_behind(tmp_path):
    import signal
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "synthetic"
    proc = subprocess.Popen([sys.executable, "-m", "raydream.prepare", "--synthetic", "600000", "--out", str(out),
                             "--rows-per-shard", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 60
    # SIGTERM once the generated DREAM file is written and its shards are being written
    while not list(tmp_path.glob(".synthetic.tmp-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert any(scratch.rglob("*.txt")), "the generated file was not there when the signal was sent"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == "terminated"
    assert list(scratch.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
