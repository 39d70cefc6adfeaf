"""Searches on a local multi-node Ray cluster (`ray.cluster_utils.Cluster`): nodes with their
own CPUs and resources on this machine, as `ray up` would give on several.

The cluster: a head with 1 CPU that declares TRIAL_DRIVER (trial drivers run only there,
as on cluster.yaml's head), and two worker nodes with 3 CPUs each. A trial's two 1-CPU Train
workers fit only on a worker node, and leave it a CPU for Ray Data.
"""

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raydream.results.inference import predict
from raydream.train.checkpoint import restore_model
from raydream.core import storage
from raydream.data.prepare import default_data_file, prepare_dataset, read_split, resolve_dataset
from raydream.core.errors import ConfigError
from raydream.core.metrics import regression_metrics
from raydream.results.table import local_experiment, read_trial
from raydream.tuning.tuner import require_driver_resource

from test_tune import LIGHTGBM_SPACE, _epochs, _wait_for, kill_group, run_tune

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("searches")]

# The winner's family, small: its soft-classification loss and flag channels, and a choice
# among lists of widths (which goes through Optuna as JSON text).
TINY_LEGNET = """
model: legnet
model_config:
  stem_channels: 16
  block_channels: {choice: [[16, 16], [32, 16]]}
  expansion: 2
  group_width: 16  # fewer, wider groups than LegNet's 2: far quicker on a CPU
train:
  loss: soft_kl
  input_flags: true
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  batch_size: 128
  train_rows: 768
  val_rows: 256
"""


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # The dashboard serves the State API the node-loss test lists Train workers with; a lost
    # node is noticed after 3 missed 1-second health checks instead of Ray's default ~30 s.
    # Worker nodes of 4 CPUs: a 2-worker trial reserves 2 x (1 CPU + 1 for its data reads).
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"TRIAL_DRIVER": 1000}, "include_dashboard": True,
        "_system_config": {"health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
                           "prestart_worker_first_driver": False, "idle_worker_killing_time_threshold_ms": 60000,
                           "health_check_failure_threshold": 3},
    })
    for _ in range(2):
        cluster.add_node(num_cpus=4)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_a_cluster_without_a_trial_driver_resource_is_refused_with_how_to_declare_it():
    with pytest.raises(ConfigError, match="declares no TRIAL_DRIVER resource.*ray start --head --resources"):
        require_driver_resource({"CPU": 8.0, "GPU": 1.0}, "10.0.0.1:6379")
    require_driver_resource({"CPU": 8.0, "TRIAL_DRIVER": 1000.0}, "10.0.0.1:6379")


@pytest.mark.timeout(300)
def test_two_workers_see_every_training_row_once_per_epoch(cluster, tmp_path):
    import ray
    import ray.train
    import ray.train.torch

    from raydream.train.config import TrainConfig
    from raydream.train.loop import NODE_ID_LABEL, TrialSetup, trainer_arguments, training_labels

    data = resolve_dataset(None)
    tcfg = TrainConfig(train_rows=800, batch_size=96)  # 400 rows a worker: 4 full batches, then 16 rows
    out = tmp_path / "rows"
    out.mkdir()

    def record_rows(config: dict) -> None:  # a Train worker: the loop's own epoch iterator
        from raydream.train.loop import epoch_batches

        rank = ray.train.get_context().get_world_rank()
        shard = ray.train.get_dataset_shard("train")
        for epoch in (1, 2):
            seqs = [str(s) for b in epoch_batches(shard, tcfg, epoch, rank) for s in b["sequence"]]
            Path(config["out"], f"{epoch}-{rank}.json").write_text(json.dumps(seqs))

    ray.init(address=cluster.address, logging_level="WARNING")
    try:
        # The data is on the head's disk (as the embedded sample is on a cluster's head), and
        # the workers are on the other nodes: the reads run on the head.
        setup = TrialSetup(str(data), str(tmp_path), num_workers=2, data_node=cluster.head_node.node_id)
        trainer = ray.train.torch.TorchTrainer(
            record_rows, train_loop_config={"out": str(out)},
            **trainer_arguments(setup, tcfg, str(tmp_path / "runs"), callbacks=[], gpus_per_worker=0),
        )
        trainer.fit()
        # A trial driver on a node without the data reads its table through a task on the data node.
        elsewhere = {"label_selector": {NODE_ID_LABEL: next(iter(cluster.worker_nodes)).node_id}, "num_cpus": 0}
        labels = ray.get(ray.remote(training_labels).options(**elsewhere).remote(setup, tcfg), timeout=60)
        assert np.array_equal(labels, read_split(data, "train", columns=("expression",), limit=800)
                              .column("expression").to_numpy())
        reads = _task_nodes(cluster, ("ReadParquet", "read_split"))
    finally:
        ray.shutdown()
    assert {name for name, _ in reads} >= {"read_split"} and any("ReadParquet" in name for name, _ in reads), reads
    assert {node for _, node in reads} == {cluster.head_node.node_id}, reads
    expected = Counter(read_split(data, "train", columns=("sequence",), limit=800).column("sequence").to_pylist())
    orders = {}
    for epoch in (1, 2):
        ranks = [json.loads((out / f"{epoch}-{rank}.json").read_text()) for rank in (0, 1)]
        assert [len(r) for r in ranks] == [400, 400]
        assert Counter(ranks[0]) + Counter(ranks[1]) == expected  # every row once, across the workers
        orders[epoch] = ranks[0]
    assert orders[1] != orders[2]  # reshuffled each epoch


def _task_nodes(cluster, names: tuple[str, ...], timeout: float = 30) -> list[tuple[str, str]]:
    """(task name, node ID) of every finished task of this driver's job whose name holds one of
    `names`, from the State API (task events reach it within a few seconds of the task's end)."""
    import ray
    from ray.util.state import list_tasks

    job = ray.get_runtime_context().get_job_id()
    found: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = list_tasks(address=cluster.address, filters=[("state", "=", "FINISHED"), ("job_id", "=", job)],
                           limit=10000)
        found = [(t.name, t.node_id) for t in tasks if any(n in t.name for n in names)]
        if len({n for n in names if any(n in name for name, _ in found)}) == len(names):
            return found
        time.sleep(1)
    raise AssertionError(f"no finished {' / '.join(names)} task listed within {timeout:g} s: {found}")


@pytest.mark.timeout(420)
def test_concurrent_two_worker_trials_survive_losing_a_node_and_validate_exactly(cluster, tmp_path):
    from ray.util.state import list_actors

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_LEGNET)
    experiment = tmp_path / "results" / "nodes"
    log = tmp_path / "search.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "raydream.tune", "--space", str(space), "--search-alg", "optuna",
             "--num-samples", "2", "--max-epochs", "12", "--grace-period", "12", "--num-workers", "2",
             "--max-failures", "1", "--torch-backend", "gloo", "--address", cluster.address, "--storage-path", str(tmp_path / "results"),
             "--name", "nodes"],
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            def both_trials_reported() -> bool:
                trials = list(experiment.glob("TrainRunTrial_*"))
                return len(trials) == 2 and all(_epochs(t) for t in trials)

            _wait_for(both_trials_reported, proc, log, timeout=240)
            # Lose the node that runs a trial's Train workers (each trial has a checkpoint by
            # now, and epochs to go: after the first, an epoch takes under a second here, with
            # its rows in memory, and the two trials' first reports came within ~3 s of each
            # other); a fresh node joins. The trial goes on from its latest checkpoint on
            # another node.
            workers = list_actors(address=cluster.address,
                                  filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
            doomed = [n for n in cluster.worker_nodes if n.node_id in {w.node_id for w in workers}]
            assert doomed, "no Train worker alive on a worker node"
            cluster.remove_node(doomed[0], allow_graceful=False)
            cluster.add_node(num_cpus=4)
            proc.wait(timeout=300)
        finally:
            kill_group(proc)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "each trial: 4 CPU for Train workers (2 of the CPUs for their Ray Data reads)" in text
    assert "up to 2 trial(s) at a time" in text and "raydream: torch.distributed backend gloo\n" in text
    table = pd.read_csv(experiment / "ranked_trials.csv")
    assert table["status"].tolist() == ["completed", "completed"], table
    trials = sorted(experiment.glob("TrainRunTrial_*"))
    restarted = [t for t in trials if (t / "train-2").is_dir()]
    assert restarted and table["failures"].max() == 1, table  # the trial(s) with a part on the lost node, once
    for trial in restarted:  # went on from its last checkpoint, not from scratch (epoch 1 ran once)
        assert _epochs(trial).count(1) == 1, _epochs(trial)
        assert read_trial(trial).history["epoch"].tolist() == list(range(1, 13))
        assert re.search(r"Train run train-2 goes on from the trial's checkpoint of epoch ([1-9]|1[01])\b",
                         (trial / "stderr").read_text())
    # The two trials ran at the same time (a trial starts its first report's duration before it).
    progress = [pd.read_csv(t / "progress.csv") for t in trials]
    spans = [(p["timestamp"].iloc[0] - p["time_this_iter_s"].iloc[0], p["timestamp"].iloc[-1]) for p in progress]
    assert spans[0][0] <= spans[1][1] and spans[1][0] <= spans[0][1]
    # Two workers' gathered validation metrics are those of one process over the split.
    val = read_split(resolve_dataset(None), "val", limit=256).to_pandas()  # the space's val_rows
    for _, row in table.iterrows():
        model, meta = restore_model(row["checkpoint"])
        preds = predict(row["checkpoint"], val["sequence"].to_numpy())
        single = regression_metrics(val["expression"].to_numpy(), preds)
        assert row["best_val_r2"] == pytest.approx(single["r2"], abs=1e-5)
        assert meta["metrics"]["val_pearson"] == pytest.approx(single["pearson"], abs=1e-5)


@pytest.mark.timeout(300)
def test_lightgbm_trains_data_parallel_on_two_workers_from_and_into_an_object_store(cluster, s3_uri, tmp_path):
    # Data and results in an S3 bucket (a local moto server) that every node reads and writes,
    # as on a cloud cluster without a shared filesystem.
    data, results = storage.join(s3_uri, "dream"), storage.join(s3_uri, "ray_results")
    prepare_dataset(default_data_file(), data)
    space = tmp_path / "lgb.yaml"
    space.write_text(LIGHTGBM_SPACE.replace("{choice: [0.002, 0.3]}", "0.3"))
    done = run_tune("--space", str(space), "--smoke", "--num-samples", "1", "--max-epochs", "4", "--num-workers", "2",
                    "--keep-checkpoints", "2", "--address", cluster.address, "--data", data, "--storage-path",
                    results, "--name", "lgb", timeout=280)
    assert "each trial: 4 CPU for Train workers (2 of the CPUs for their Ray Data reads)" in done.stdout
    assert f"ranked table: {storage.join(results, 'lgb', 'ranked_trials.csv')}" in done.stdout
    # Read back as on a laptop: the experiment is mirrored locally, checkpoints included.
    experiment = local_experiment(storage.join(results, "lgb"))
    table = pd.read_csv(experiment / "ranked_trials.csv")
    assert table[["status", "epochs"]].values.tolist() == [["completed", 4]]
    progress = pd.read_csv(next(experiment.glob("*/progress.csv")))
    assert (progress["workers"] == 2).all()
    # --keep-checkpoints 2: at learning rate 0.3 the model overfits within 4 epochs, so the
    # last epoch is not one of the two best, and the trial keeps its best two and its latest.
    assert progress["val_r2"].iloc[-1] < progress["val_r2"].nlargest(2).iloc[-1], progress["val_r2"]
    kept = [p for p in Path(table.loc[0, "checkpoint"]).parent.glob("checkpoint_*") if p.is_dir()]
    assert len(kept) == 3
    # Every worker validates the whole model on all of the val split: the reported R^2 is
    # that of the checkpoint evaluated in one process.
    val = read_split(data, "val").to_pandas()
    preds = predict(table.loc[0, "checkpoint"], val["sequence"].to_numpy())
    r2 = regression_metrics(val["expression"].to_numpy(), preds)["r2"]
    assert table.loc[0, "best_val_r2"] == pytest.approx(r2, abs=1e-6)
