"""The package as pip installs it from a wheel (not the source checkout): the shipped search
spaces, the embedded sample, the type marker and the console scripts come with it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["raydream-prepare", "raydream-tune", "raydream-results", "raydream-report", "raydream-predict",
            "raydream-evaluate", "raydream-explain"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the project's files: setuptools writes build/ and *.egg-info next to
    # the sources it builds, and a test leaves the checkout as it found it.
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "raydream", source / "raydream", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(out), str(source)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("raydream-*.whl")
    return path


def test_the_wheel_holds_the_spaces_the_sample_and_the_commands(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    shipped = {p.name for p in (ROOT / "raydream" / "search_spaces").glob("*.yaml")}
    assert {"resnet.yaml", "legnet.yaml", "families.yaml"} <= shipped
    assert {f"raydream/search_spaces/{name}" for name in shipped} <= names
    assert {"raydream/py.typed", "raydream/data/default/dream_sample_train.txt.gz"} <= names
    for command in COMMANDS:
        module = command.removeprefix("raydream-")
        module = "results.table" if module == "results" else module  # `python -m raydream.results`: a package
        assert f"{command} = raydream.{module}:console" in entry_points


def test_an_installed_wheel_finds_its_spaces_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=240)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([str(target / "bin" / "raydream-tune"), "--space", "no_such_space"], cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: no search space named 'no_such_space'; available: cls_cnn, cnn, families")
    where = subprocess.run([sys.executable, "-c", "import raydream.tuning.space as s; print(s.find_space('resnet'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(target / "raydream" / "search_spaces" / "resnet.yaml"), where.stderr
