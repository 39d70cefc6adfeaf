"""Every script in scripts/ runs with --smoke."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
# Seconds allowed: the search benchmark runs two small searches (two Ray starts, two Train runs).
LIMITS = {"bench_search.py": 300}


@pytest.mark.parametrize("script", [pytest.param(s, id=s.name, marks=pytest.mark.timeout(LIMITS.get(s.name, 120) + 10))
                                    for s in SCRIPTS])
def test_script_smoke(script):
    done = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True,
                          timeout=LIMITS.get(script.name, 120))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
