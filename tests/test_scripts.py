"""Every script in scripts/ runs with --smoke.

The smoke runs check the plumbing, not the timing, so they run side by side: every script
but the two that run whole searches (ALONE) starts when the first of these tests does, each
with its own Ray instance where it needs one; each test then waits for its own script. The
two ALONE scripts run last, one at a time, once the others have finished.
"""

import subprocess
import sys
from pathlib import Path

import pytest

# The searches' group (see pyproject.toml): most of these scripts start Ray, and the two ALONE
# run whole searches.
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("searches")]

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
# Run on their own: each runs whole searches, which beside the other scripts slowed them all
# (the overhead benchmark added ~70 s to the suite run side by side, ~45 s alone).
ALONE = {"bench_search.py", "bench_overhead.py"}
# Seconds allowed: the search benchmark runs two small searches (two Ray starts, two Train
# runs), the overhead benchmark a search and a plain Tune run.
LIMITS = {"bench_search.py": 300, "bench_overhead.py": 240}
SIDE_BY_SIDE_LIMIT = 240


def _start(script: Path, out: Path) -> subprocess.Popen:
    with (out / f"{script.stem}.out").open("w") as stdout, (out / f"{script.stem}.err").open("w") as stderr:
        return subprocess.Popen([sys.executable, str(script), "--smoke"], stdout=stdout, stderr=stderr, text=True)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    procs = {s.name: _start(s, out) for s in SCRIPTS if s.name not in ALONE}
    yield out, procs
    for proc in procs.values():
        proc.kill()
        proc.wait()


def _timeout(script: Path) -> int:
    return LIMITS.get(script.name, SIDE_BY_SIDE_LIMIT if script.name not in ALONE else 120)


@pytest.mark.parametrize("script", [pytest.param(s, id=s.name, marks=pytest.mark.timeout(_timeout(s) + 10))
                                    for s in sorted(SCRIPTS, key=lambda s: s.name in ALONE)])
def test_script_smoke(script, side_by_side, tmp_path):
    out, procs = side_by_side
    if script.name in ALONE:
        proc = _start(script, tmp_path)
        out = tmp_path
    else:
        proc = procs[script.name]
    try:
        proc.wait(timeout=_timeout(script))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    stdout, stderr = ((out / f"{script.stem}.{kind}").read_text() for kind in ("out", "err"))
    assert proc.returncode == 0, stderr[-2000:]
    assert stdout.strip()


def test_the_gpu_check_says_it_skipped_where_there_is_no_cuda(side_by_side):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available: test_the_gpu_check_passes_every_row_without_ray runs the check")
    out, procs = side_by_side
    procs["gpu_check.py"].wait(timeout=60)
    assert (out / "gpu_check.out").read_text() == "no CUDA: skipped\n"


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_the_gpu_check_passes_every_row_without_ray():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    done = subprocess.run([sys.executable, str(SCRIPTS[0].parent / "gpu_check.py"), "--torch-only"],
                          capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "FAIL" not in done.stdout
