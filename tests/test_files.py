import pytest

from raydream.core.files import write_text_atomic


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    write_text_atomic(path, "a\n")
    write_text_atomic(path, "b\n")
    assert path.read_text() == "b\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "missing" / "out.csv", "x")
    assert not (tmp_path / "missing").exists()
