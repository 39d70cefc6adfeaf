"""Tree models under Ray: LightGBM through Ray Train's `LightGBMTrainer`, and a random forest
as a plain Tune function trainable.

LightGBM: every worker reads its shard of the training split through Ray Data, keeps the
sequences as byte codes, lets LightGBM build its Dataset from their features batch by batch
(`raydream.models.trees.feature_rows`), and joins a data-parallel LightGBM run
(`tree_learner=data`, `pre_partition`, network parameters from Ray Train). The validation
split is not divided: every worker holds all of it, and since data-parallel LightGBM builds
the same trees on every worker, the metrics of rank 0 are those of the whole model. Each
"epoch" (a slice of the boosting rounds, see `raydream.models.trees.epoch_ends`) reports the
validation metrics and a checkpoint, so ASHA stops weak boosters like weak networks.

Random forest: one process per trial (`n_jobs` = the CPUs it holds) grows the forest in
`max_epochs` slices of trees with scikit-learn's warm start, reporting after each slice.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import ray
import ray.train

from raydream.train.checkpoint import restore_model, save_tree_checkpoint
from raydream.data.encode import to_byte_matrix
from raydream.core.metrics import regression_metrics
from raydream.models import model_config
from raydream.models.trees import (
    FEATURE_BATCH,
    TreeModel,
    epoch_ends,
    feature_batches,
    feature_rows,
    grow_forest,
    learning_rate_schedule,
    lightgbm_params,
    new_forest,
)
from raydream.train.config import TrainConfig, TrialConfig
from raydream.train.loop import (TrialSetup, density_weights, first_rows, read_table, starting_checkpoint,
                                 trainer_arguments, training_labels)
from raydream.train.weights import DensityWeights


@dataclass
class Rows:
    """A split's sequences in `to_byte_matrix` form, codes uint8 (N, seq_len), and labels y (N,)."""

    codes: np.ndarray
    y: np.ndarray


def read_rows(batches: Iterable[dict], seq_len: int) -> Rows:
    """Sequences and labels of a stream of {"sequence", "expression"} batches."""
    codes, ys = [], []
    for batch in batches:
        codes.append(to_byte_matrix(batch["sequence"], seq_len))
        ys.append(np.asarray(batch["expression"], dtype=np.float64))
    if not codes:
        return Rows(np.zeros((0, seq_len), dtype=np.uint8), np.zeros(0))
    return Rows(np.concatenate(codes), np.concatenate(ys))


def _metrics(epoch: int, rounds_done: int, y: np.ndarray, preds: np.ndarray, **extra: float) -> dict:
    scores = regression_metrics(y, preds)
    return {"epoch": epoch, "rounds": rounds_done, **{f"val_{k}": v for k, v in scores.items()}, **extra}


def _report(rank: int, model: TreeModel, name: str, tcfg: TrainConfig, metrics: dict, best_r2: float,
            report=ray.train.report, checkpoint_cls=ray.train.Checkpoint) -> None:
    """Report `metrics` with a checkpoint written by rank 0 (the others report the metrics only).

    report, checkpoint_cls: Ray Train's by default; Tune's for a function trainable.
    """
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            save_tree_checkpoint(tmp, model, name, tcfg, metrics["epoch"], {**metrics, "best_val_r2": best_r2})
            checkpoint = checkpoint_cls.from_directory(tmp)
        report(metrics, checkpoint=checkpoint)


def lightgbm_loop_per_worker(loop_config: dict) -> None:
    """Ray Train worker entry point for LightGBM.

    loop_config: {"model": "lightgbm", "model_config": its typed config, "train": a TrainConfig}
        (typed once by `build_lightgbm_trainer`), "resume_checkpoint", "num_threads", and
        "weights" (a DensityWeights, or None).
    Reports per epoch: epoch, rounds, val_r2, val_pearson, val_spearman, val_mse, lr, workers.
    """
    import lightgbm
    import ray.train.lightgbm

    name, mcfg, tcfg = loop_config["model"], loop_config["model_config"], loop_config["train"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()

    # Each worker's share of train_rows, and the first val_rows (see `first_rows`).
    limits = {"train": max(1, tcfg.train_rows // world_size) if tcfg.train_rows else 0, "val": tcfg.val_rows}
    train, val = (
        read_rows(first_rows(ray.train.get_dataset_shard(split).iter_batches(batch_size=FEATURE_BATCH,
                                                                             batch_format="numpy"), limits[split]),
                  mcfg.seq_len)
        for split in ("train", "val")
    )
    weights: DensityWeights | None = loop_config.get("weights")
    params = {**lightgbm_params(mcfg, tcfg.seed, int(loop_config.get("num_threads", 1))),
              **ray.train.lightgbm.get_network_params()}
    if world_size > 1:
        params.update(tree_learner="data", pre_partition=True)

    start, init_model, best_r2 = 0, None, -np.inf
    if checkpoint := starting_checkpoint(loop_config):
        with checkpoint.as_directory() as directory:
            restored, meta = restore_model(directory)
        init_model, start = restored.estimator, meta["metrics"]["rounds"]
        best_r2 = meta["metrics"]["best_val_r2"]
    ends = epoch_ends(mcfg.num_boost_round, tcfg.max_epochs)
    schedule = learning_rate_schedule(mcfg)

    def report_epoch(env) -> None:
        nonlocal best_r2
        done = env.iteration + 1
        if done not in ends:
            return
        epoch = ends.index(done) + 1
        model = TreeModel(mcfg, env.model)
        metrics = _metrics(epoch, done, val.y, model.predict_codes(val.codes), lr=schedule(env.iteration),
                           workers=world_size)
        best_r2 = max(best_r2, metrics["val_r2"])
        _report(rank, model, name, tcfg, metrics, best_r2)

    dataset = lightgbm.Dataset(feature_rows(train.codes, mcfg), train.y, weight=weights(train.y) if weights else None,
                               params={"verbosity": -1})
    lightgbm.train(
        params,
        dataset,
        num_boost_round=mcfg.num_boost_round - start,
        init_model=init_model,
        callbacks=[lightgbm.reset_parameter(learning_rate=lambda i: schedule(start + i)), report_epoch],
    )


def run_forest_trial(trial: TrialConfig, setup: TrialSetup) -> None:
    """Tune function trainable: grow one random forest, reporting after each slice of trees."""
    from ray import tune

    name, tcfg = trial.model, trial.train
    mcfg = model_config(name, trial.model_config)

    def load(split: str, limit: int) -> Rows:
        table = read_table(setup, split, limit=limit)
        batches = ({"sequence": b.column("sequence").to_numpy(zero_copy_only=False),
                    "expression": b.column("expression").to_numpy()} for b in table.to_batches(FEATURE_BATCH))
        return read_rows(batches, mcfg.seq_len)

    train, val = load("train", tcfg.train_rows), load("val", tcfg.val_rows)
    X = np.concatenate(list(feature_batches(train.codes, mcfg)))  # scikit-learn wants it whole
    weights = density_weights(train.y, tcfg)
    sample_weight = weights(train.y) if weights else None
    forest, start, best_r2 = new_forest(mcfg, tcfg.seed, n_jobs=setup.cpus_per_worker), 0, -np.inf
    if checkpoint := tune.get_checkpoint():
        with checkpoint.as_directory() as directory:
            restored, meta = restore_model(directory)
        forest, start, best_r2 = restored.estimator, meta["epoch"], meta["metrics"]["best_val_r2"]
    for epoch, n_trees in enumerate(epoch_ends(mcfg.n_estimators, tcfg.max_epochs), start=1):
        if epoch <= start:
            continue
        model = TreeModel(mcfg, grow_forest(forest, n_trees, X, train.y, sample_weight))
        metrics = _metrics(epoch, n_trees, val.y, model.predict_codes(val.codes))
        best_r2 = max(best_r2, metrics["val_r2"])
        _report(0, model, name, tcfg, metrics, best_r2, tune.report, tune.Checkpoint)


def build_lightgbm_trainer(trial: TrialConfig, setup: TrialSetup, storage_path: str, callbacks: list,
                           run_name: str = "train", resume: "ray.train.Checkpoint | None" = None):
    """A LightGBMTrainer for one trial: `setup.num_workers` workers, data-parallel when > 1;
    `resume`: the checkpoint a restarted trial goes on from."""
    from ray.train.lightgbm import LightGBMTrainer

    tcfg = trial.train
    weights = density_weights(training_labels(setup, tcfg), tcfg)
    return LightGBMTrainer(
        lightgbm_loop_per_worker,
        train_loop_config={"model": trial.model, "model_config": model_config(trial.model, trial.model_config),
                           "train": tcfg, "resume_checkpoint": resume, "num_threads": setup.cpus_per_worker,
                           "weights": weights},
        **trainer_arguments(setup, tcfg, storage_path, callbacks, gpus_per_worker=0, run_name=run_name),
    )
