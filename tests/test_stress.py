"""Searches on a busy machine, run as users run them, each under a hard timeout.

* The README's `--smoke` search while a second Ray instance on the same machine runs a
  20-trial search and a busy loop loads a CPU. Before trials ended their own Train runs,
  the second instance made Train's clean-up of a stopped trial fail ("Found multiple active
  Ray instances"), its CPUs were never freed and the next trial's data was never read.
* Two searches submitted at once to one Ray cluster (a head with 2 CPUs): each trial
  reserves its Train worker and its data-reading CPU together, so neither search can take
  the CPU the other's data reads need.
"""

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_tune import TINY_SPACE, kill_group

pytestmark = [pytest.mark.ray]

SEARCH_TIMEOUT = 300


def _search(*args: str, log: Path) -> subprocess.Popen:
    """`python -m raydream.tune ARGS` started in its own session, output to `log`."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "raydream.tune", *args], stdout=out, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, log: Path, deadline: float) -> str:
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        pytest.fail(f"the search did not end in time:\n{log.read_text()[-3000:]}")
    finally:
        kill_group(proc)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def _statuses(experiment: Path) -> list[str]:
    return pd.read_csv(experiment / "ranked_trials.csv")["status"].tolist()


@pytest.mark.timeout(SEARCH_TIMEOUT + 60)
def test_the_smoke_search_finishes_beside_another_ray_instance_on_a_loaded_machine(tmp_path):
    deadline = time.monotonic() + SEARCH_TIMEOUT
    load = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 400\nwhile time.time() < end: pass"],
                            start_new_session=True)
    # The second instance: 20 one-process trials (random forests), many trials in one Ray
    # instance while the smoke search starts and ends its Train runs beside it.
    beside = _search("--space", "random_forest", "--smoke", "--num-samples", "20", "--max-concurrent", "1",
                     "--storage-path", str(tmp_path / "beside"), "--name", "twenty", log=tmp_path / "beside.log")
    try:
        time.sleep(5)  # its Ray instance is up first, as in the reported hang
        smoke = _search("--space", "resnet", "--smoke", "--storage-path", str(tmp_path / "results"), "--name", "smoke",
                        log=tmp_path / "smoke.log")
        out = _finish(smoke, tmp_path / "smoke.log", deadline)
        assert "best checkpoint on the held-out test split" in out
        assert _statuses(tmp_path / "results" / "smoke") == ["completed", "completed"]
        _finish(beside, tmp_path / "beside.log", deadline)
        statuses = _statuses(tmp_path / "beside" / "twenty")
        assert len(statuses) == 20 and all(s in ("completed", "stopped early") for s in statuses), statuses
    finally:
        kill_group(beside)
        kill_group(load)


@pytest.mark.timeout(SEARCH_TIMEOUT + 60)
def test_two_searches_submitted_at_once_to_one_cluster_both_finish(tmp_path):
    from ray.cluster_utils import Cluster

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    deadline = time.monotonic() + SEARCH_TIMEOUT
    searches: dict[str, subprocess.Popen] = {}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"TRIAL_DRIVER": 1000}})
    try:
        searches = {name: _search("--space", str(space), "--num-samples", "2", "--max-epochs", "1", "--address",
                                  cluster.address, "--stall-timeout", "240", "--storage-path", str(tmp_path / "results"),
                                  "--name", name, "--seed", str(seed), log=tmp_path / f"{name}.log")
                    for seed, name in enumerate(["first", "second"])}
        for name, proc in searches.items():
            out = _finish(proc, tmp_path / f"{name}.log", deadline)
            assert "up to 1 trial(s) at a time" in out
            assert _statuses(tmp_path / "results" / name) == ["completed", "completed"]
    finally:
        for proc in searches.values():
            kill_group(proc)
        cluster.shutdown()


@pytest.mark.timeout(SEARCH_TIMEOUT + 60)
def test_a_trial_that_cannot_get_its_resources_fails_in_one_line_and_is_retried(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    log = tmp_path / "search.log"
    deadline = time.monotonic() + SEARCH_TIMEOUT
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"TRIAL_DRIVER": 1000}})
    search = None
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        held = ray.util.placement_group([{"CPU": 1}])  # another job's: the trial's 2 CPUs never fit
        ray.get(held.ready(), timeout=60)
        search = _search("--space", str(space), "--num-samples", "1", "--max-epochs", "1", "--stall-timeout", "10",
                         "--address", cluster.address, "--storage-path", str(tmp_path / "results"), "--name", "held",
                         log=log)
        while "failed:" not in log.read_text():
            assert search.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        ray.util.remove_placement_group(held)  # the other job ends: the retry gets the CPUs
        out = _finish(search, log, deadline)
    finally:
        if search is not None:
            kill_group(search)
        ray.shutdown()
        cluster.shutdown()
    (line,) = [line for line in out.splitlines() if "failed:" in line]
    assert line.endswith("no epoch reported for 10 s after epoch 0: its Train workers were waiting for their "
                         "resources; the cluster had 1 of 2 CPU, 0 of 0 GPU free; retrying it"), line
    assert "Traceback" not in out
    table = pd.read_csv(tmp_path / "results" / "held" / "ranked_trials.csv")
    assert table["status"].tolist() == ["completed"] and table["failures"].tolist() == [1]
