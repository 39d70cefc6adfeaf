"""Searches on a busy cluster, run as users run them, each under a hard timeout (the smoke
search beside a second Ray instance on a loaded machine is in tests/test_faults.py).

* Two searches submitted at once to one Ray cluster (a head with 2 CPUs): each trial
  reserves its Train worker and its data-reading CPU together, so neither search can take
  the CPU the other's data reads need.
* A trial whose Train workers cannot get their CPUs (another job holds one) fails after
  `--stall-timeout` with one line that says so, and is retried once the CPUs are free. A
  LightGBM trial: its Train run starts workers (a one-worker network trial trains in its own
  process, Ray Train's local mode, and waits in Tune's queue for its CPUs instead).
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_tune import TINY_SPACE, kill_group

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("searches")]

SEARCH_TIMEOUT = 300
TINY_TREES = """
model: lightgbm
model_config:
  k: 3
  num_leaves: {choice: [7, 15]}
  num_boost_round: 40
train:
  train_rows: 768
  val_rows: 256
"""


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


def assert_fits_a_terminal(out: str, tmp_path: Path) -> None:
    """A search's console at the default verbosity: one line per trial event, no Tune boxes
    or tables, and no line over 120 characters once this test's temporary paths are written
    as the README's (./ray_results, ~/.cache/raydream, ./space.yaml)."""
    import os

    shown = out.replace(str(tmp_path / "results"), "ray_results").replace(os.environ["RAYDREAM_CACHE"], "~/.cache/raydream")
    shown = shown.replace(str(tmp_path / "tiny.yaml"), "space.yaml")
    long = [line for line in shown.splitlines() if len(line) > 120]
    assert not long, long
    assert "╭" not in out and "Trial status:" not in out and "Traceback" not in out
    assert re.search(r"\nraydream: trial \w+ started: ", out) and re.search(r"\nraydream: trial \w+ completed ", out)


def _statuses(experiment: Path) -> list[str]:
    return pd.read_csv(experiment / "ranked_trials.csv")["status"].tolist()


@pytest.fixture(scope="module")
def cluster():
    """One Ray cluster as `ray start --head --num-cpus 2 --resources='{"TRIAL_DRIVER": 1000}'`
    starts it, shared by this module's tests (each leaves it idle)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"TRIAL_DRIVER": 1000}})
    yield cluster
    cluster.shutdown()


@pytest.mark.timeout(SEARCH_TIMEOUT + 60)
def test_two_searches_submitted_at_once_to_one_cluster_both_finish(cluster, tmp_path):
    # One trial each is enough: before trials reserved their data-reading CPU, each search's
    # first trial took the CPU the other's Ray Data reads counted on, and both hung.
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    deadline = time.monotonic() + SEARCH_TIMEOUT
    searches: dict[str, subprocess.Popen] = {}
    try:
        searches = {name: _search("--space", str(space), "--num-samples", "1", "--max-epochs", "1", "--address",
                                  cluster.address, "--stall-timeout", "240", "--storage-path", str(tmp_path / "results"),
                                  "--name", name, "--seed", str(seed), log=tmp_path / f"{name}.log")
                    for seed, name in enumerate(["first", "second"])}
        for name, proc in searches.items():
            out = _finish(proc, tmp_path / f"{name}.log", deadline)
            assert "up to 1 trial(s) at a time" in out
            # Each search read its splits once, beside the other search's trial.
            assert re.search(r"the train and val splits \([\d,]+ rows\) read once into Ray's object store", out)
            assert _statuses(tmp_path / "results" / name) == ["completed"]
            assert_fits_a_terminal(out, tmp_path)
    finally:
        for proc in searches.values():
            kill_group(proc)


@pytest.mark.timeout(SEARCH_TIMEOUT + 60)
def test_a_trial_that_cannot_get_its_resources_fails_in_one_line_and_is_retried(cluster, tmp_path):
    import ray

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_TREES)
    log = tmp_path / "search.log"
    deadline = time.monotonic() + SEARCH_TIMEOUT
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
    assert_fits_a_terminal(out, tmp_path)
    unwrapped = re.sub(r"\n  (?=\S)", " ", out)  # the console wraps a long message at 120 characters
    (line,) = [line for line in unwrapped.splitlines() if "failed:" in line]
    assert line.endswith("no epoch reported for 10 s after epoch 0: its Train workers were waiting for their "
                         "resources; the cluster had 1 of 2 CPU, 0 of 0 GPU free; retrying it"), line
    assert "Traceback" not in out
    table = pd.read_csv(tmp_path / "results" / "held" / "ranked_trials.csv")
    assert table["status"].tolist() == ["completed"] and table["failures"].tolist() == [1]


@pytest.mark.timeout(120)
def test_a_search_without_an_address_starts_its_own_ray_instance_beside_a_running_cluster(cluster):
    # A cluster started on this machine (as `ray start --head` starts one) leaves its address
    # where `ray.init()` without an address looks first, and a search beside it (no --address)
    # was refused its CPU count by ray.init ("When connecting to an existing cluster, num_cpus
    # and num_gpus must not be provided").
    code = ("import ray\nfrom raydream.tuning.tuner import start_ray\nstart_ray(None, 1, False, logging_level='ERROR')\n"
            "print(ray.get_runtime_context().gcs_address, ray.cluster_resources())\nray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    address, resources = done.stdout.split(" ", 1)
    assert address != cluster.address and "'CPU': 1.0" in resources and "'TRIAL_DRIVER': 1000.0" in resources
