"""What a search survives, run as a user runs it, and every entry point under a hard timeout.

One `--smoke` search of a small ResNet space (`FAULTS_SPACE`: the shipped `resnet` space's
recipe at laptop widths, so that the faults, not the model, take the time), on data prepared
by `python -m raydream.prepare`, is put through two faults: the process that trains its first
trial (the trial's own process: a one-worker trial runs its Train run in Ray Train's local
mode) is killed (SIGKILL) mid-run, and the whole search is stopped by Ctrl-C during the
second trial.
`--resume` then finishes it, and `results`, `report`, `predict` and `evaluate` read what it
left. Every command is a subprocess with a timeout, so a hang fails the test instead of
stalling CI.

The machine is busy meanwhile, as a user's often is: a second Ray instance runs a search of
one-process trials (at least 20 of them) beside the search until both are stopped with
Ctrl-C, and a busy loop loads a CPU at first. Before trials ended
their own Train runs, a second instance on the machine made Train's clean-up of a stopped
trial fail ("Found multiple active Ray instances"), its CPUs were never freed and the next
trial's data was never read: the smoke search hung at its second trial.
"""

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from raydream.train.checkpoint import restore_model
from raydream.data.prepare import default_data_file, read_split
from raydream.results.table import read_trial

from test_tune import _epochs, _wait_for, kill_group, run_tune

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("searches"), pytest.mark.timeout(480),
              pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes in /proc (Linux)")]

# Seconds any one command may take: the non-Ray tools load a model or read a table (a few
# seconds each); a search or its resume runs 2 trials of 3 epochs on 1,024 rows.
TOOL_TIMEOUT = 120
SEARCH_TIMEOUT = 300
EPOCHS = 3
FAULTS_SPACE = """
model: resnet
model_config:
  channels: {choice: [32, 48]}
  kernel_size: 5
  num_blocks: 3
  pool: {choice: [avg, max_avg]}
train:
  lr: {loguniform: [5.0e-4, 2.0e-3]}
  weight_decay: {loguniform: [1.0e-5, 1.0e-3]}
  switch_epoch: {randint: [2, 4]}
  batch_size: 128
"""


def cli(module: str, *args: str, timeout: int = TOOL_TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m raydream.MODULE ARGS` as a user runs it, killed after `timeout` seconds."""
    return subprocess.run([sys.executable, "-m", f"raydream.{module}", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


# The titles Ray gives the processes that train: a Train worker, or a trial's own process
# (Tune's `with_resources` trainable), which trains in local mode.
TRAINING_PROCESSES = (b"ray::RayTrainWorker", b"ray::ResourceTrainable")


def kill_trainers(session: int) -> list[int]:
    """SIGKILL every process that trains in a session (the search's, started with
    start_new_session=True): found by the title Ray gives its actor processes."""
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
            if title.startswith(TRAINING_PROCESSES) and os.getsid(int(proc.name)) == session:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
        except (OSError, ProcessLookupError):  # gone meanwhile
            continue
    return killed


@dataclass
class Survivor:
    data: Path
    experiment: Path
    first_run: str  # output of the search up to Ctrl-C
    killed: list[int]  # processes killed in the first trial: the one that trained it
    at_ctrl_c: dict[str, list[int]]  # trial directory -> epochs reported before Ctrl-C
    interrupted_table: str  # `raydream.results` on the interrupted experiment
    resumed: subprocess.CompletedProcess
    beside: Path  # the experiment of the search run beside it in another Ray instance


@pytest.fixture(scope="module")
def survivor(tmp_path_factory) -> Survivor:
    tmp = tmp_path_factory.mktemp("faults")
    data = tmp / "data"
    prepared = cli("prepare", default_data_file(), "--out", data)
    assert prepared.returncode == 0 and "wrote" in prepared.stdout, prepared.stderr
    experiment, log = tmp / "results" / "cut", tmp / "first.log"
    # Beside it, until the search is stopped: another Ray instance running trial after trial
    # (random forests, one process each, 500 to sample), and a CPU busy for the first 45 s.
    load = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 45\nwhile time.time() < end: pass"],
                            start_new_session=True)
    with (tmp / "beside.log").open("w") as out:
        beside = subprocess.Popen([sys.executable, "-m", "raydream.tune", "--space", "random_forest", "--smoke",
                                   "--num-samples", "500", "--max-concurrent", "1", "--data", str(data),
                                   "--storage-path", str(tmp / "beside"), "--name", "many"],
                                  stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # Grace period = epochs: ASHA stops nothing, so both trials run every epoch.
    space = tmp / "resnet_small.yaml"
    space.write_text(FAULTS_SPACE)
    command = [sys.executable, "-m", "raydream.tune", "--space", str(space), "--data", str(data), "--smoke",
               "--max-epochs", str(EPOCHS), "--grace-period", str(EPOCHS), "--seed", "11",
               "--storage-path", str(tmp / "results"), "--name", "cut"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            def trials() -> list[Path]:
                return sorted(experiment.glob("TrainRunTrial_*"))

            # Once the first trial has reported (and checkpointed) epoch 1, it has epochs to go.
            _wait_for(lambda: bool(trials()) and len(_epochs(trials()[0])) >= 1, proc, log, timeout=240)
            killed = kill_trainers(proc.pid)
            assert killed, "no training process alive after the first report"

            def second_trial_reported() -> bool:
                found = trials()
                return len(found) >= 2 and len(_epochs(found[0])) == EPOCHS and len(_epochs(found[1])) == 1

            _wait_for(second_trial_reported, proc, log, timeout=240)
            at_ctrl_c = {t.name: _epochs(t) for t in trials()}
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            proc.wait(timeout=120)
            first_run = log.read_text()
            assert proc.returncode == 130, first_run[-3000:]
            assert beside.poll() is None, (tmp / "beside.log").read_text()[-3000:]
            beside.send_signal(signal.SIGINT)  # Ctrl-C: it ends with its table
            beside.wait(timeout=120)
        finally:
            kill_group(proc)
            kill_group(beside)
            kill_group(load)
    assert beside.returncode == 130, (tmp / "beside.log").read_text()[-3000:]
    table = cli("results", experiment)
    assert table.returncode == 0, table.stderr
    resumed = run_tune("--resume", str(experiment), "--space", str(space), timeout=SEARCH_TIMEOUT)
    return Survivor(data, experiment, first_run, killed, at_ctrl_c, table.stdout, resumed, tmp / "beside" / "many")


def test_a_trial_whose_training_process_is_killed_goes_on_from_its_checkpoint(survivor):
    assert len(survivor.killed) == 1  # the trial's process, which ran its one worker's loop
    first, second = sorted(survivor.experiment.glob("TrainRunTrial_*"))
    # Before Ctrl-C the first trial had run every epoch once, in two Train runs: the second,
    # in a new process, started from the checkpoint of the last epoch Tune had recorded.
    assert survivor.at_ctrl_c[first.name] == list(range(1, EPOCHS + 1))
    assert re.search(r"Train run train goes on from the trial's checkpoint of epoch [12]\b",
                     (first / "stderr").read_text())
    assert "in Ray Train local mode (1 CPU for Ray Data reads)" in survivor.first_run  # the header says how its trials train
    table = pd.read_csv(survivor.experiment / "ranked_trials.csv")
    assert len(table) == 2 and set(table["status"]) == {"completed"}, table
    assert table["failures"].sum() == 1, table  # the killed trial, once; the other none
    assert (table["epochs"] == EPOCHS).all(), table


def test_the_search_beside_it_in_another_ray_instance_ran_20_trials_and_more(survivor):
    statuses = pd.read_csv(survivor.beside / "ranked_trials.csv")["status"].tolist()
    finished = [s for s in statuses if s in ("completed", "stopped early")]
    assert len(finished) >= 20 and set(statuses) - set(finished) <= {"interrupted"}, statuses


def test_ctrl_c_leaves_an_experiment_that_resume_finishes(survivor):
    assert "ASHA cannot stop a trial early" in survivor.first_run  # grace period = epochs
    assert "by random search" in survivor.first_run
    assert "snapshotting has been triggered" not in survivor.first_run  # Tune's warning at every epoch, silenced
    assert f"python -m raydream.tune --resume {survivor.experiment}" in survivor.first_run
    assert "interrupted" in survivor.interrupted_table
    first, second = sorted(survivor.experiment.glob("TrainRunTrial_*"))
    assert survivor.at_ctrl_c[second.name] == [1]
    assert list(first.glob("events.out.tfevents.*"))  # TensorBoard logs, where Tune writes them
    assert (first / "stderr").is_file()  # the trial driver's output

    done = survivor.resumed.stdout
    assert "resuming" in done and "Trials ranked by best validation R^2" in done
    table = pd.read_csv(survivor.experiment / "ranked_trials.csv")
    assert {"channels", "pool", "lr", "weight_decay", "switch_epoch"} <= set(table.columns)
    assert table["best_val_r2"].is_monotonic_decreasing
    assert _epochs(first) == survivor.at_ctrl_c[first.name]  # the finished trial was not rerun
    # The cut trial went on from its checkpoint: epoch 1 ran once. An epoch reported in the
    # moment of Ctrl-C, before Tune saved its checkpoint, runs again and counts once.
    assert _epochs(second).count(1) == 1 and _epochs(second)[-1] == EPOCHS, _epochs(second)
    assert read_trial(second).history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert re.search(r"Train run train goes on from the trial's checkpoint of epoch [12]\b",
                     (second / "stderr").read_text())
    best = Path(table.loc[0, "checkpoint"])
    assert best.is_relative_to(survivor.experiment)
    model, meta = restore_model(best)
    assert meta["model"] == "resnet" and meta["metrics"]["val_r2"] == pytest.approx(table.loc[0, "best_val_r2"])
    assert "\nOn the held-out test split (the baselines fit on the first 5,099 training rows" in done


def test_every_entry_point_reads_what_the_search_left_within_its_timeout(survivor, tmp_path):
    # prepare and tune ran in the fixture; here the tools that read an experiment, without Ray.
    experiment = survivor.experiment
    shown = cli("results", experiment, "--top", "1")
    assert shown.returncode == 0, shown.stderr
    table, baselines = shown.stdout.split("\n\n")  # the top trial and the baselines' rows, then their fit
    assert [" baseline " in line for line in table.splitlines()[1:]].count(True) == 2
    assert len(table.splitlines()) == 4 and baselines.startswith("Baselines on the same splits (fit on 5,099 training rows")
    assert "k-mer ridge (k = 1-6" in baselines
    plots = cli("report", experiment)
    assert plots.returncode == 0, plots.stderr
    for name in ["pred_vs_measured", "learning_curves", "best_so_far", "hyperparameters"]:
        assert (experiment / "report" / f"{name}.png").stat().st_size > 10_000

    # The best trial's predictions on the test split, scored by evaluate, give the test R^2
    # the search printed when it finished.
    test = read_split(survivor.data, "test").to_pandas()
    truth = tmp_path / "test.txt"
    truth.write_text("".join(f"{s}\t{e}\n" for s, e in zip(test["sequence"], test["expression"])))
    predicted = cli("predict", "--experiment", experiment, "--input", truth, "--output", tmp_path / "pred.json")
    assert predicted.returncode == 0 and f"{len(test)} predictions from 1 model(s)" in predicted.stdout, predicted.stderr
    scored = cli("evaluate", "--pred", tmp_path / "pred.json", "--truth", truth)
    assert scored.returncode == 0, scored.stderr
    scores = dict(line.split("\t") for line in scored.stdout.splitlines())
    printed = re.search(r"\n  best trial +R\^2 (-?[0-9.]+)", survivor.resumed.stdout)
    assert printed and float(scores["r2"]) == pytest.approx(float(printed.group(1)), abs=1e-4)
