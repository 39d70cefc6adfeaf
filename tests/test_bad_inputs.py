"""The bad-input corpus in tests/data/bad/ (see its README): every file yields one clear error
line from the command that reads it, a non-zero exit, no traceback and no output left
behind; the two accepted oddities (CRLF line ends, a UTF-8 BOM) prepare as the clean file."""

import subprocess
import sys
from pathlib import Path

import pytest

from raydream.data.prepare import read_split
from raydream.errors import run_cli
from raydream.prepare import main as prepare_main
from raydream.tune import main as tune_main

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
}

# datasets/NAME -> (file named in the error, words), from `python -m raydream.tune --data DIR`
DATASETS = {
    "missing_shard": ("train/part-00000.parquet", "shard listed in manifest.json is missing"),
    "truncated_shard": ("train/part-00000.parquet", "the shard changed after it was prepared"),
    "changed_shard": ("train/part-00000.parquet", "its sha256 no longer matches manifest.json"),
    "not_parquet": ("val/part-00000.parquet", "not a readable Parquet file"),
    "bad_manifest": ("manifest.json", "not valid JSON"),
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


def test_a_space_with_a_yaml_syntax_error_names_its_line(tmp_path, capsys):
    space = CORPUS / "spaces" / "syntax_error.yaml"
    err = one_error_line(capsys, run_cli(tune_main, ["--space", str(space), "--smoke", "--storage-path",
                                                      str(tmp_path)]))
    assert f"{space}: YAML syntax error at line 4, column 14: expected ',' or ']'" in err


@pytest.mark.parametrize("args", [
    ["raydream.prepare", str(CORPUS / "text" / "truncated.txt.gz"), "--out", "{tmp}/out"],
    ["raydream.tune", "--data", str(CORPUS / "datasets" / "changed_shard"), "--smoke", "--storage-path", "{tmp}"],
    ["raydream.tune", "--space", str(CORPUS / "spaces" / "syntax_error.yaml"), "--smoke", "--storage-path", "{tmp}"],
], ids=["prepare", "tune-data", "tune-space"])
def test_the_command_line_exits_2_with_one_line_and_no_traceback(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", *[a.format(tmp=tmp_path) for a in args]],
                          capture_output=True, text=True, timeout=120)
    assert_one_error_line(done.returncode, done.stderr)
