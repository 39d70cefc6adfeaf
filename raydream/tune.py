"""`python -m raydream.tune --space resnet`: a Ray Tune + ASHA search over Ray Train runs.

Each Tune trial is a small driver function that builds a `TorchTrainer` (Ray Train V2) for
its sampled configuration; the trainer's workers read the prepared Parquet shards through
Ray Data and report per-epoch validation metrics back to Tune, where ASHA stops the weak
trials early. At the end a table of trials ranked by best validation R^2 is printed and
written as CSV in the experiment directory.

How trials are given resources, and why (measured with Ray 2.60 on 2 cores):

* The trial driver only waits on `trainer.fit()`, so it holds no CPU: it asks for a sliver
  of a custom resource, `TRIAL_DRIVER`, that `ray.init` creates. Were it to hold a CPU,
  the train worker would take the other and Ray Data would have no CPU left to read with:
  the trial hangs forever ("backpressured: tasks(ResourceBudget)").
* At least `DATA_CPUS` CPUs are left free for Ray Data, and trials run at most
  (free CPUs) // (CPUs per trial) at a time; a trial shape that can never fit is refused
  before Ray starts any trial.
* Ray is started with its dashboard: without it, a finished TorchTrainer's placement group
  is never released ("Failed to query Ray Train Controller actor state") and the *second*
  trial waits forever. That is why the project depends on `ray[default]`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow.parquet as pq

from raydream.errors import ConfigError, RayDreamError, run_cli
from raydream.files import write_text_atomic
from raydream.models import TORCH, model_kind
from raydream.results import RANKED_CSV, experiment_table, format_table, write_search_info
from raydream.spaces import Distribution, SearchSpace, load_space
from raydream.train.config import TrainConfig

DRIVER_RESOURCE = "TRIAL_DRIVER"
DRIVER_SHARE = 0.01  # of DRIVER_RESOURCE per trial driver; the resource only tags drivers
DATA_CPUS = 1  # CPUs kept free for Ray Data reads
DEFAULT_NUM_SAMPLES = 8
SMOKE = {"num_samples": 2, "max_epochs": 2, "train_rows": 1024}


@dataclass(frozen=True)
class ResourcePlan:
    """How trials fit the cluster.

    cpus_per_trial, gpus_per_trial: what one trial's Train workers hold.
    max_concurrent: trials that can run at once with DATA_CPUS left for Ray Data.
    """

    total_cpus: float
    total_gpus: float
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int

    def describe(self, train_run: bool = True) -> str:
        """One line; train_run=False for trials that hold their CPUs themselves (no Train run)."""
        gpus = f", {self.gpus_per_trial:g} GPU" if self.gpus_per_trial else ""
        holder = f"Train workers + a driver on {DRIVER_SHARE} {DRIVER_RESOURCE}" if train_run else "the trial process"
        return (
            f"each trial: {self.cpus_per_trial:g} CPU{gpus} for {holder}; {DATA_CPUS} CPU kept for Ray Data; "
            f"cluster {self.total_cpus:g} CPU / {self.total_gpus:g} GPU -> "
            f"up to {self.max_concurrent} trial(s) at a time"
        )


def plan_resources(
    cluster: dict[str, float], num_workers: int, cpus_per_worker: int, use_gpu: bool, max_concurrent: int | None = None
) -> ResourcePlan:
    """Check that one trial can be scheduled with room for Ray Data, and how many fit at once
    (at most `max_concurrent`, when given).

    Raises:
        ConfigError: the trial shape can never be scheduled on this cluster, saying why.
    """
    if num_workers < 1 or cpus_per_worker < 1:
        raise ConfigError("--num-workers and --cpus-per-worker must be >= 1")
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    per_trial_cpu = num_workers * cpus_per_worker
    per_trial_gpu = num_workers if use_gpu else 0
    if per_trial_cpu + DATA_CPUS > cpus:
        raise ConfigError(
            f"a trial needs {num_workers} worker(s) x {cpus_per_worker} CPU = {per_trial_cpu} CPU, "
            f"plus {DATA_CPUS} CPU for Ray Data, but the cluster has {cpus:g} CPU; "
            f"lower --num-workers or --cpus-per-worker"
        )
    if per_trial_gpu > gpus:
        raise ConfigError(f"a trial needs {per_trial_gpu} GPU(s) but the cluster has {gpus:g}")
    concurrent = int((cpus - DATA_CPUS) // per_trial_cpu)
    if per_trial_gpu:
        concurrent = min(concurrent, int(gpus // per_trial_gpu))
    concurrent = max(1, concurrent)
    if max_concurrent is not None:
        concurrent = min(concurrent, max_concurrent)
    return ResourcePlan(cpus, gpus, per_trial_cpu, per_trial_gpu, concurrent)


def to_tune_domain(value: Any) -> Any:
    """A spaces.Distribution as a Ray Tune search domain; constants pass through."""
    from ray import tune

    if not isinstance(value, Distribution):
        return value
    a = value.args
    if value.kind == "choice":
        return tune.choice(list(a))
    if value.kind == "uniform":
        return tune.uniform(a[0], a[1])
    if value.kind == "loguniform":
        return tune.loguniform(a[0], a[1])
    if value.kind == "randint":
        return tune.randint(a[0], a[1])
    if all(isinstance(x, int) for x in a):  # keep integer fields integers
        return tune.qrandint(a[0], a[1], a[2])
    return tune.quniform(a[0], a[1], a[2])


def build_param_space(space: SearchSpace, train_overrides: dict[str, Any]) -> dict[str, Any]:
    """Tune's param_space: {"model", "model_config", "train"} with Tune domains inside."""
    train = {**space.train, **train_overrides}
    return {
        "model": space.model,
        "model_config": {k: to_tune_domain(v) for k, v in space.model_config.items()},
        "train": {k: to_tune_domain(v) for k, v in train.items()},
    }


def run_trial(config: dict, setup) -> None:
    """Tune function trainable: one Ray Train run (TorchTrainer, or LightGBMTrainer for
    "lightgbm") for one sampled configuration."""
    import ray.data
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raydream.train.loop import build_trainer
    from raydream.train.tree_loop import build_lightgbm_trainer

    ray.data.DataContext.get_current().enable_progress_bars = False
    # Train writes its checkpoints straight into the experiment's storage, under the trial's
    # directory name, so the reported checkpoint paths outlive the Ray session.
    trial_storage = str(Path(setup.experiment_dir) / Path(tune.get_context().get_trial_dir()).name)
    build = build_lightgbm_trainer if config["model"] == "lightgbm" else build_trainer
    build(config, setup, trial_storage, [TuneReportCallback()]).fit()


def trainable(space: SearchSpace, setup, plan: ResourcePlan):
    """The Tune trainable of a space with its resources.

    Ray Train runs (networks, LightGBM): a driver on a sliver of TRIAL_DRIVER, the workers
    hold the CPUs. Random forest: one process holding its CPUs itself (n_jobs threads).
    """
    from ray import tune

    if space.model == "random_forest":
        from raydream.train.tree_loop import run_forest_trial

        return tune.with_resources(tune.with_parameters(run_forest_trial, setup=setup), {"CPU": plan.cpus_per_trial})
    return tune.with_resources(tune.with_parameters(run_trial, setup=setup), {DRIVER_RESOURCE: DRIVER_SHARE})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raydream.tune",
        description="Search model hyperparameters with Ray Tune (ASHA) over Ray Train runs.",
    )
    p.add_argument("--space", default="resnet", help="search space name (search_spaces/NAME.yaml) or YAML path (default resnet)")
    p.add_argument("--data", default=None, help="DREAM text file or prepared dataset dir (default: embedded 6,370-row DREAM sample)")
    p.add_argument("--num-samples", type=int, default=None, help="trials to sample (default 8; 2 with --smoke)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial and ASHA max_t (default: the space's, else 10)")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA: epochs before a trial can be stopped (default 2)")
    p.add_argument("--reduction-factor", type=int, default=2, help="ASHA: keep 1/N of trials per rung (default 2)")
    p.add_argument("--num-workers", type=int, default=1, help="data-parallel Ray Train workers per trial (default 1)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per Train worker (default 1)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray instance (default: all)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="run at most N trials at once (default: as many as the cluster fits)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop the search after this many seconds; finished trials are kept (default: none)")
    p.add_argument("--keep-checkpoints", type=int, default=1,
                   help="checkpoints kept per trial: the best N by val R^2, plus the latest (default 1)")
    p.add_argument("--storage-path", default="ray_results", help="where experiments are written (default ./ray_results)")
    p.add_argument("--name", default=None, help="experiment name (default SPACE-TIMESTAMP)")
    p.add_argument("--seed", type=int, default=0, help="seeds the search and every trial (default 0)")
    p.add_argument("--smoke", action="store_true", help="tiny run: 2 trials, 2 epochs, 1,024 training rows (explicit flags win)")
    p.add_argument("--verbose", action="store_true", help="show Ray and worker logs")
    return p


def _test_score(checkpoint: str | None, data_dir: Path) -> dict[str, float] | None:
    """Score the best checkpoint on the held-out test split, in this process (no Ray)."""
    from raydream.checkpoint import predict_from_checkpoint
    from raydream.data.prepare import split_files
    from raydream.metrics import regression_metrics

    if not isinstance(checkpoint, str) or not Path(checkpoint).is_dir():
        return None
    table = pq.read_table(split_files(data_dir, "test"), columns=["sequence", "expression"])
    if table.num_rows < 2:
        return None
    preds = predict_from_checkpoint(checkpoint, table.column("sequence").to_numpy(zero_copy_only=False))
    return regression_metrics(table.column("expression").to_numpy(), preds)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    space = load_space(args.space)
    num_samples = args.num_samples
    if num_samples is None:
        num_samples = SMOKE["num_samples"] if args.smoke else DEFAULT_NUM_SAMPLES
    max_epochs = args.max_epochs
    if max_epochs is None:
        max_epochs = SMOKE["max_epochs"] if args.smoke else space.train.get("max_epochs", TrainConfig.max_epochs)
    if num_samples < 1 or max_epochs < 1:
        raise ConfigError("--num-samples and --max-epochs must be >= 1")
    if args.grace_period < 1 or args.reduction_factor < 2:
        raise ConfigError("--grace-period must be >= 1 and --reduction-factor >= 2")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise ConfigError(f"--time-budget must be > 0 seconds, got {args.time_budget:g}")
    fewest = space.fewest_rounds()
    if fewest is not None and fewest < max_epochs:
        raise ConfigError(f"{space.path}: {space.model} trials may get only {fewest} rounds, fewer than the "
                          f"{max_epochs} epochs they are cut into; raise the rounds or lower --max-epochs")
    if space.model == "random_forest" and args.num_workers != 1:
        raise ConfigError("random_forest grows each forest in one process; use --cpus-per-worker, not --num-workers")
    grace = min(args.grace_period, max_epochs)
    overrides: dict[str, Any] = {"max_epochs": max_epochs}
    if "seed" not in space.train:
        overrides["seed"] = args.seed
    if args.smoke:
        overrides["train_rows"] = SMOKE["train_rows"]

    from raydream.data.prepare import load_manifest, resolve_dataset

    data_dir = resolve_dataset(args.data)
    rows = load_manifest(data_dir)["rows"]
    if rows["train"] < 2 or rows["val"] < 2:
        raise ConfigError(f"{data_dir}: needs >= 2 training and validation rows, has {rows['train']} and {rows['val']}")

    name = args.name or f"{space.path.stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    storage = Path(args.storage_path).expanduser().resolve()
    return _search(args, space, data_dir, overrides, num_samples, max_epochs, grace, storage, name)


def _search(args, space, data_dir, overrides, num_samples, max_epochs, grace, storage, name) -> int:
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # The local raylet and its workers inherit this process's environment.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from raydream.train.loop import TrialSetup

    ray.init(
        num_cpus=args.num_cpus,
        resources={DRIVER_RESOURCE: 1000},
        include_dashboard=True,  # see the module docstring: without it the 2nd trial hangs
        log_to_driver=args.verbose,
        logging_level=logging.INFO if args.verbose else logging.WARNING,
    )
    try:
        use_gpu = ray.cluster_resources().get("GPU", 0) > 0 and model_kind(space.model) == TORCH
        plan = plan_resources(ray.cluster_resources(), args.num_workers, args.cpus_per_worker, use_gpu,
                              args.max_concurrent)
        setup = TrialSetup(str(data_dir), str(storage / name), args.num_workers, args.cpus_per_worker, use_gpu,
                           args.keep_checkpoints)
        write_search_info(storage / name, {
            "space": str(space.path.resolve()),
            "model": space.model,
            "sampled_keys": space.sampled_keys(),
            "max_epochs": max_epochs,
            "data": str(data_dir),
            "seed": args.seed,
        })
        print(f"raydream: space {space.path} ({space.model}), data {data_dir}")
        print(f"raydream: {num_samples} trial(s), up to {max_epochs} epoch(s), ASHA grace {grace}, "
              f"reduction {args.reduction_factor}; {plan.describe(train_run=space.model != 'random_forest')}")
        tuner = tune.Tuner(
            trainable(space, setup, plan),
            param_space=build_param_space(space, overrides),
            tune_config=tune.TuneConfig(
                num_samples=num_samples,
                time_budget_s=args.time_budget,
                search_alg=BasicVariantGenerator(random_state=args.seed, max_concurrent=plan.max_concurrent),
                scheduler=ASHAScheduler(
                    time_attr="epoch",
                    metric="val_r2",
                    mode="max",
                    max_t=max_epochs,
                    grace_period=grace,
                    reduction_factor=args.reduction_factor,
                ),
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage),
                verbose=1,
                # Trials that report to Tune directly (random forest) keep their best checkpoints.
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=args.keep_checkpoints, checkpoint_score_attribute="val_r2", checkpoint_score_order="max"
                ),
            ),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    experiment = Path(grid.experiment_path)
    table = experiment_table(experiment)  # from the trials' files, as `python -m raydream.results` reads them
    csv_path = write_text_atomic(experiment / RANKED_CSV, table.to_csv(index=False))
    print("\nTrials ranked by best validation R^2:")
    print(format_table(table))
    print(f"\nranked table: {csv_path}")
    best = table.iloc[0] if len(table) else None
    if best is None or not math.isfinite(best["best_val_r2"]):
        raise RayDreamError(f"no trial reported a validation score; see {experiment}")
    print(f"best trial: {best['trial']} (val R^2 {best['best_val_r2']:.4f} at epoch {best['best_epoch']})")
    print(f"best checkpoint: {best['checkpoint']}")
    test = _test_score(best["checkpoint"], data_dir)
    if test:
        print("best checkpoint on the held-out test split: "
              + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
