"""`python -m raydream.tune --space resnet`: a Ray Tune + ASHA search over Ray Train runs.

Each Tune trial is a small driver function that builds a `TorchTrainer` (Ray Train V2) for
its sampled configuration; the trainer's workers read the prepared Parquet shards through
Ray Data and report per-epoch validation metrics back to Tune, where ASHA stops the weak
trials early. At the end a table of trials ranked by their best validation R^2 (or the
`--metric` given) is printed and written as CSV in the experiment directory, with the
baselines fitted on the same splits. What the search is (`raydream.tuning.plan.Search`) is
recorded in the experiment directory before it starts, and `--resume` reads it back to
continue an interrupted search with `Tuner.restore`.

How trials are given resources, and why (measured with Ray 2.60 on 2 cores):

* A one-worker network trial trains in its own process (Ray Train's local mode, see
  `raydream.train.config.uses_local_mode`), and holds its worker's CPUs and GPUs itself: a
  Train run with worker actors costs about 7 s a trial to start.
* A data-parallel trial's driver (several workers, or LightGBM) only waits on its Train run,
  so it holds no CPU: it asks for a sliver of a custom resource, `TRIAL_DRIVER`, that
  `ray.init` creates (a cluster's head declares it).
* Everything else such a trial uses is reserved by its Train run's workers, in one placement
  group, before it starts: their own CPUs (and GPUs) plus a CPU each for the Ray Data tasks
  that read their data, which ask Ray for no CPU of their own. No read task waits for a CPU
  outside the trial's reservation, so neither a busy cluster nor a second search on it can
  leave a trial's data unread.
* A trial is a Tune class `Trainable` that ends its Train run itself when Tune stops it (see
  `raydream.train.trial`): Train's own clean-up of a run whose driver went away asks the
  dashboard's State API, which does not answer when two Ray instances run on one machine,
  and the CPUs of the stopped trial were then never freed.
* Every wait is bounded: a trial that reports no epoch for `--stall-timeout` seconds fails
  with one line saying what it waited for and is retried under `--max-failures`, and a search
  whose trials cannot start for as long stops with its table (`SearchStallWatch`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import ray.tune

from raydream.core import storage
from raydream.core.background import InBackground
from raydream.core.console import CONSOLE_WIDTH, say
from raydream.core.errors import INTERRUPTED, ArgumentParser, ConfigError, RayDreamError, run_cli
from raydream.core.files import check_writable_location
from raydream.tuning.plan import (
    SEARCH_ALGS,
    TORCH_BACKENDS,
    ResourcePlan,
    Search,
    asha_notes,
    build_param_space,
    check_precision,
    check_torch_backend,
    check_trial_shape,
    plan_resources,
    space_changes,
    worker_gpus,
)
from raydream.results.table import (BASELINES_FILE, DEFAULT_METRIC, METRIC_LABELS, METRICS, RANKED_CSV, REPEAT_OF,
                              REPEATS_CSV, REPEATS_DIR, best_column, better, experiment_table, format_repeats,
                              format_table, local_experiment, read_experiment, repeat_runs, summarize_repeats,
                              trial_states, with_baselines)
from raydream.tuning.space import FAMILY, FamilySpace, SearchSpace, load_space
from raydream.train.config import DEFAULT_STALL_TIMEOUT_S, DRIVER_RESOURCE, PRECISIONS, TrainConfig, uses_local_mode
from raydream.tuning.watch import SearchStallWatch

DEFAULT_NUM_SAMPLES = 8
SMOKE = {"num_samples": 2, "max_epochs": 2, "grace_period": 1, "train_rows": 1024}
DEFAULT_GRACE_PERIOD = 2
ENSEMBLE_SIZE = 3  # the summary also scores the mean prediction of the top checkpoints
TRACKERS = ("mlflow", "wandb", "tensorboard")  # --log: Ray Tune's logger callbacks for these
# Flags that --resume accepts; everything else is taken from the experiment's record.
RESUME_FLAGS = {"resume", "space", "num_cpus", "dashboard", "address", "verbose", "stall_timeout"}
STALLED = 1  # exit status of a search stopped because none of its trials could start


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m raydream.tune",
        description="Search model hyperparameters with Ray Tune (ASHA) over Ray Train runs.",
    )
    p.add_argument("--space", default="resnet", help="search space name (raydream/search_spaces/NAME.yaml, or ./search_spaces/NAME.yaml) or YAML path (default resnet)")
    p.add_argument("--data", default=None, help="DREAM text file, or prepared dataset dir or URI (s3://...) "
                   "(default: embedded 6,370-row DREAM sample)")
    p.add_argument("--metric", choices=tuple(METRICS), default=DEFAULT_METRIC,
                   help="validation metric that ASHA stops trials by, the searcher learns from, checkpoints are "
                        "kept by and the table is ranked by (default val_r2; val_mse: lower is better)")
    p.add_argument("--search-alg", choices=SEARCH_ALGS, default="random",
                   help="random sampling, or Optuna's TPE (model-based), default random")
    p.add_argument("--num-samples", type=int, default=None, help="trials to sample (default 8; 2 with --smoke)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial and ASHA max_t (default: the space's, else 10)")
    p.add_argument("--grace-period", type=int, default=None,
                   help="ASHA: epochs before a trial can be stopped (default 2; 1 with --smoke)")
    p.add_argument("--reduction-factor", type=int, default=2, help="ASHA: keep 1/N of trials per rung (default 2)")
    p.add_argument("--num-workers", type=int, default=1, help="data-parallel Ray Train workers per trial (default 1)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per Train worker (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs per Train worker (default: 1 when the cluster has GPUs and the model is a network, "
                        "else 0); on an autoscaling cluster, give it with --max-concurrent")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="training math: fp32, or bf16 / fp16 mixed precision (fp16 needs GPUs; default: the "
                        "space's, else fp32)")
    p.add_argument("--torch-backend", choices=TORCH_BACKENDS, default=None,
                   help="torch.distributed backend of a trial's Train workers (default: NCCL on GPUs, Gloo on "
                        "CPUs); gloo lets the workers of a trial share a GPU (--gpus-per-worker 0.5 "
                        "--num-workers 2), which NCCL refuses")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray instance (default: all)")
    p.add_argument("--dashboard", action="store_true",
                   help="start Ray's dashboard with the local Ray instance, to watch the search (default: only "
                        "when trials start Train workers, whose clean-up uses it)")
    p.add_argument("--address", default=None,
                   help="join this running Ray cluster ('auto': the one `ray start` started on this machine; "
                        "default: $RAY_ADDRESS, as `ray job submit` sets it; else start a Ray instance of the "
                        "search's own on this machine, even where `ray start` has started one)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="run at most N trials at once (default: as many as the cluster fits)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="stop the search after this many seconds; finished trials are kept (default: none)")
    p.add_argument("--keep-checkpoints", type=int, default=1,
                   help="checkpoints kept per trial: the best N by --metric, plus the latest (default 1)")
    p.add_argument("--max-failures", type=int, default=1,
                   help="retry a failed trial up to N times, from its last checkpoint (default 1)")
    p.add_argument("--stall-timeout", type=float, default=None,
                   help=f"seconds a trial may report no epoch (at least 3x its slowest epoch) before it fails, "
                        f"and a search may wait for a trial to start before it stops "
                        f"(default {DEFAULT_STALL_TIMEOUT_S:g})")
    p.add_argument("--storage-path", default="ray_results",
                   help="where experiments are written: a directory every node sees, or a URI such as "
                        "s3://bucket/ray_results (default ./ray_results)")
    p.add_argument("--name", default=None, help="experiment name (default SPACE-TIMESTAMP)")
    p.add_argument("--seed", type=int, default=0, help="seeds the search and every trial (default 0)")
    p.add_argument("--repeats", type=int, default=0,
                   help=f"once the search has finished, train each of its top {ENSEMBLE_SIZE} configurations again "
                        f"with N other seeds, for all its epochs, and report each one's mean +- sd (default 0)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run: 2 trials, 2 epochs, ASHA grace 1, 1,024 training rows (explicit flags win)")
    p.add_argument("--resume", metavar="EXPERIMENT_DIR", default=None,
                   help="continue an interrupted search (STORAGE_PATH/NAME); finished trials are not rerun, and the "
                        "space and settings are the recorded ones")
    p.add_argument("--log", action="append", choices=TRACKERS, default=None, metavar="TRACKER",
                   help="also log every trial to an experiment tracker through Ray Tune's integration: "
                        "mlflow ($MLFLOW_TRACKING_URI, else sqlite:///STORAGE_PATH/mlflow.db), wandb (project NAME; "
                        "WANDB_MODE=offline works) or tensorboard (Tune's event files in each trial's directory); "
                        "repeat for several")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="-v: a result line per trial report and Ray's info logs; -vv: also the workers' output")
    return p


def _given_flags(argv: Sequence[str] | None) -> set[str]:
    """The destinations of the flags written on the command line (not left at defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _test_predictions(checkpoints: Sequence[str | None], data_dir: str) -> tuple[np.ndarray, list] | None:
    """The test split's labels and each checkpoint's predictions of it, in this process (no
    Ray); None in place of a checkpoint that is not on disk, and None for a dataset without a
    test split to score."""
    from raydream.results.inference import predict
    from raydream.data.prepare import read_split

    table = read_split(data_dir, "test")
    if table.num_rows < 2:
        return None
    sequences = table.column("sequence").to_numpy(zero_copy_only=False)
    preds = [predict(c, sequences) if isinstance(c, str) and Path(c).is_dir() else None
             for c in checkpoints]
    return table.column("expression").to_numpy(), preds


def _test_scores(checkpoints: Sequence[str | None], data_dir: str) -> tuple[dict | None, dict | None]:
    """Scores on the held-out test split: of the first checkpoint (the best), and of the mean
    prediction of all of them when there are ENSEMBLE_SIZE on disk. None for what cannot be
    scored (no test split, no checkpoint). Each checkpoint predicts once."""
    from raydream.core.metrics import regression_metrics

    on_disk = [isinstance(c, str) and Path(c).is_dir() for c in checkpoints]
    if not on_disk or not on_disk[0]:
        return None, None
    members = checkpoints if len(checkpoints) == ENSEMBLE_SIZE and all(on_disk) else checkpoints[:1]
    predicted = _test_predictions(members, data_dir)
    if predicted is None:
        return None, None
    labels, preds = predicted
    ensemble = regression_metrics(labels, np.mean(preds, axis=0)) if len(preds) > 1 else None
    return regression_metrics(labels, preds[0]), ensemble


def main(argv: Sequence[str] | None = None) -> int:
    _set_environment()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    code, _ = _search(args, _given_flags(argv))
    return code


def search(space: str | os.PathLike = "resnet", data: str | os.PathLike | None = None, *,
           callbacks: Sequence[Any] = (), **flags: Any) -> "ray.tune.ResultGrid":
    """Run a search from Python, as `python -m raydream.tune` does, and return Ray Tune's
    `ResultGrid` of its trials.

        grid = raydream.search("resnet", num_samples=4, max_epochs=6, callbacks=[MyCallback()])
        grid.get_best_result(metric="val_r2", mode="max").checkpoint

    space, data: as --space and --data. flags: the command's other flags by their names
    (`num_samples=4`, `smoke=True`, `log=["mlflow"]`, `verbose=1`, `resume=EXPERIMENT_DIR`).
    callbacks: Ray Tune callbacks (`ray.tune.Callback`) for the search's trials. The ranked
    table and summary are printed and written as by the command; the experiment directory
    is the grid's `experiment_path`.

    Raises:
        ConfigError / DataError: a bad flag, space or dataset, before Ray starts.
        RayDreamError: no trial could start, or none reported a score.
    """
    _set_environment()
    args, given = _api_args(space, data, flags)
    code, grid = _search(args, given, callbacks=callbacks)
    if grid is None:
        raise RayDreamError(f"the search stopped before its trials ran (exit status {code}); see its output above")
    return grid


def _api_args(space: str | os.PathLike, data: str | os.PathLike | None,
              flags: dict[str, Any]) -> tuple[argparse.Namespace, set[str]]:
    """The command line `search()`'s arguments stand for, parsed by the command's parser."""
    parser = build_parser()
    options = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv = ["--space", str(space)] + (["--data", str(data)] if data is not None else [])
    for name, value in flags.items():
        action = options.get(name)
        if action is None or name in ("space", "data"):
            raise ConfigError(f"search(): unknown flag {name!r}; flags are: {', '.join(sorted(options))}")
        flag = action.option_strings[-1]
        if isinstance(action, argparse._CountAction):
            argv += [flag] * int(value)
        elif action.nargs == 0:  # store_true
            if value is True:
                argv.append(flag)
            elif value is not False:
                raise ConfigError(f"search(): {name} must be True or False, got {value!r}")
        elif isinstance(action, argparse._AppendAction):
            for item in [value] if isinstance(value, str) else list(value):
                argv += [flag, str(item)]
        elif value is not None:
            argv += [flag, str(value)]
    return parser.parse_args(argv), _given_flags(argv)


def _set_environment() -> None:
    """Settings of Ray that a search needs, set before anything imports Ray (unless set)."""
    # Before anything imports Ray (--resume imports ray.tune to check the experiment).
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # The local raylet and its workers inherit this process's environment.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # Tune saves the experiment's state each time a trial has checkpointed num_to_keep times.
    # raydream checkpoints every epoch (the trial's record for retries and --resume), so with
    # epochs of seconds Tune warned of "excessive" snapshots at nearly every report. Its
    # warning for a slow snapshot (over 30 s) stays on.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A Train run's controller polls its workers every 2 s by default: it hears of a report,
    # a finished run or a dead worker up to 2 s late, and every trial pays that at its end.
    # 0.5 s saved ~1-2 s per trial on 2 cores. A Ray instance started here inherits it; a
    # cluster's nodes keep their own setting.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


def _search(args: argparse.Namespace, given: set[str], callbacks: Sequence[Any] = ()):
    """Check the flags, then run the search: (exit status, Tune's ResultGrid or None)."""
    if not args.verbose:
        # A failed trial is one line (SearchStallWatch); its traceback is in its error.txt.
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
        # Tune's console output: its newer engine prints an experiment box and a TensorBoard
        # hint into Ray's session directory even at verbosity 0; the older one prints nothing
        # at 0, and the watch says each trial event in one line.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    given_address = args.address
    args.address = args.address or os.environ.get("RAY_ADDRESS") or None
    if args.address and args.num_cpus is not None:
        raise ConfigError("--num-cpus sizes a Ray instance started here; a running cluster (--address or "
                          "$RAY_ADDRESS) has the CPUs its nodes declare")
    if args.address and args.dashboard:
        raise ConfigError("--dashboard starts the dashboard of a Ray instance started here; a running cluster "
                          "(--address or $RAY_ADDRESS) has the dashboard its head was started with")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.stall_timeout is not None and not (math.isfinite(args.stall_timeout) and args.stall_timeout > 0):
        raise ConfigError(f"--stall-timeout must be a number of seconds > 0, got {args.stall_timeout:g}")
    if args.address:
        check_cluster_address(args.address, "--address" if given_address else "$RAY_ADDRESS")
    if args.resume:
        search = _recorded_search(args, given)
    else:
        search = _new_search(args)
    trackers = _trackers(args.log or [], search)
    import ray

    if ray.is_initialized():
        raise ConfigError("Ray is already running in this process; a search starts (or joins, with address=) its "
                          "own: call ray.shutdown() first")
    return _run(search, args, resume=bool(args.resume), callbacks=[*trackers(), *callbacks], trackers=trackers)


def _trackers(names: Sequence[str], search: Search):
    """A function making the Ray Tune logger callbacks of `--log` (fresh ones for each Tune
    run: the search, then its repeats), checked before Ray starts."""
    names = list(dict.fromkeys(names))
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if "mlflow" in names:
        _require("mlflow", "mlflow")
        if not tracking_uri:
            if storage.is_remote(search.experiment_dir):
                raise ConfigError("--log mlflow with an object-store --storage-path: set $MLFLOW_TRACKING_URI to "
                                  "your MLflow server (or a database URI)")
            tracking_uri = "sqlite:///" + str(Path(storage.parent(search.experiment_dir)).resolve() / "mlflow.db")
    if "wandb" in names:
        _require("wandb", "wandb")
    if "tensorboard" in names:
        _require("tensorboardX", "tensorboard")
    name = storage.name(search.experiment_dir)

    def make() -> list[Any]:
        made = []
        if "mlflow" in names:
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            made.append(MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name=name, save_artifact=False))
        if "wandb" in names:
            from ray.air.integrations.wandb import WandbLoggerCallback

            made.append(WandbLoggerCallback(project=name))
        if "tensorboard" in names:
            from ray.tune.logger import TBXLoggerCallback

            made.append(TBXLoggerCallback())
        return made

    make.tracking_uri = tracking_uri if "mlflow" in names else None
    return make


def _require(module: str, tracker: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        install = {"mlflow": "'raydream[mlflow]'", "wandb": "'raydream[wandb]'", "tensorboard": "tensorboardX"}[tracker]
        raise ConfigError(f"--log {tracker} needs the {module} package, which is not installed: pip install {install}")


def _new_search(args: argparse.Namespace) -> Search:
    """The search the flags describe, checked before Ray starts."""
    space = load_space(args.space)
    num_samples = args.num_samples
    if not space.sampled_keys():  # every trial would train the same model with the same seed
        if num_samples not in (None, 1):
            raise ConfigError(f"{space.path} searches nothing, so its {num_samples} trials would be one model "
                              f"trained {num_samples} times alike; use --num-samples 1, and --repeats N to train "
                              f"it with N more seeds")
        num_samples = 1
    if num_samples is None:
        num_samples = SMOKE["num_samples"] if args.smoke else DEFAULT_NUM_SAMPLES
    max_epochs = args.max_epochs
    if max_epochs is None:
        max_epochs = SMOKE["max_epochs"] if args.smoke else space.train.get("max_epochs", TrainConfig.max_epochs)
    grace = args.grace_period
    if grace is None:
        grace = SMOKE["grace_period"] if args.smoke else DEFAULT_GRACE_PERIOD
    if num_samples < 1 or max_epochs < 1:
        raise ConfigError("--num-samples and --max-epochs must be >= 1")
    if grace < 1 or args.reduction_factor < 2:
        raise ConfigError("--grace-period must be >= 1 and --reduction-factor >= 2")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.keep_checkpoints < 1:
        raise ConfigError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must be >= 0, got {args.max_failures}")
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise ConfigError(f"--time-budget must be a number of seconds > 0, got {args.time_budget:g}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.repeats < 0:
        raise ConfigError(f"--repeats must be >= 0, got {args.repeats}")
    check_trial_shape(args.num_workers, args.cpus_per_worker, args.gpus_per_worker or 0.0, args.torch_backend)
    fewest = space.fewest_rounds()
    if fewest is not None and fewest < max_epochs:
        raise ConfigError(f"{space.path}: {space.model} trials may get only {fewest} rounds, fewer than the "
                          f"{max_epochs} epochs they are cut into; raise the rounds or lower --max-epochs")
    network = space.has_network
    if not network and (args.precision or args.gpus_per_worker or args.torch_backend):
        raise ConfigError(f"{space.model} trains on CPUs in fp64/fp32; --precision, --gpus-per-worker and "
                          f"--torch-backend are for networks")
    if space.model == "random_forest" and args.num_workers != 1:
        raise ConfigError("random_forest grows each forest in one process; use --cpus-per-worker, not --num-workers")
    if not args.address:  # the trial shape against this machine, before any data is read
        _check_local_fit(space, args.num_workers, args.cpus_per_worker, args.gpus_per_worker, args,
                         args.torch_backend)
    overrides: dict[str, Any] = {"max_epochs": max_epochs}
    if "seed" not in space.train:
        overrides["seed"] = args.seed
    if args.smoke:
        overrides["train_rows"] = SMOKE["train_rows"]
    if args.precision:
        overrides["precision"] = args.precision

    name = args.name or f"{space.path.stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"--name {name!r}: expected a plain name for the experiment's directory")
    if not storage.is_remote(args.storage_path):
        check_writable_location(args.storage_path, "--storage-path")
        check_writable_location(storage.join(args.storage_path, name), "--name")

    from raydream.data.prepare import load_manifest, resolve_dataset

    data_dir = resolve_dataset(args.data)
    rows = load_manifest(data_dir, verify=True)["rows"]
    if rows["train"] < 2 or rows["val"] < 2:
        raise ConfigError(f"{data_dir}: needs >= 2 training and validation rows, has {rows['train']} and {rows['val']}")
    experiment = storage.join(storage.resolve(args.storage_path), name)
    if storage.is_file(storage.join(experiment, "tuner.pkl")):
        raise ConfigError(f"{experiment}: an experiment of this name exists; continue it with --resume {experiment}, "
                          f"or pick another --name")
    return Search(
        space=space, data=str(data_dir), experiment_dir=experiment, num_samples=num_samples,
        max_epochs=max_epochs, grace_period=min(grace, max_epochs), reduction_factor=args.reduction_factor,
        search_alg=args.search_alg, seed=args.seed, num_workers=args.num_workers,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
        max_concurrent=args.max_concurrent, time_budget=args.time_budget,
        keep_checkpoints=args.keep_checkpoints, max_failures=args.max_failures, train_overrides=overrides,
        stall_timeout=args.stall_timeout or DEFAULT_STALL_TIMEOUT_S, torch_backend=args.torch_backend,
        metric=args.metric, repeats=args.repeats,
    )


def _recorded_search(args: argparse.Namespace, given: set[str]) -> Search:
    """The search recorded in `args.resume`, after checking that it can be resumed as asked."""
    from ray.tune import Tuner

    extra = sorted(given - RESUME_FLAGS)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise ConfigError(f"--resume continues a search with the settings it was started with; it takes only "
                          f"--space (to check), --num-cpus, --address and --verbose, not {flag}")
    directory = storage.resolve(args.resume)
    if not storage.is_dir(directory):
        found = "is a file, not an experiment directory" if storage.exists(directory) else "no such experiment directory"
        raise ConfigError(f"--resume {args.resume}: {found}; give STORAGE_PATH/NAME, as the search printed when it "
                          f"started")
    search = Search.read(directory)
    if args.stall_timeout is not None:
        search = dataclasses.replace(search, stall_timeout=args.stall_timeout)
    if "space" in given:
        changes = space_changes(search.space, load_space(args.space))
        if changes:
            raise ConfigError(
                f"--space {args.space} differs from the space {storage.name(directory)} was started with ("
                + "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")
                + "). The finished trials and the searcher's state come from the recorded space, so a resumed "
                "search keeps it; start a new search (another --name) to search the new one"
            )
    from raydream.data.prepare import load_manifest

    if not args.address:  # the recorded trial shape against this machine, before Ray starts
        _check_local_fit(search.space, search.num_workers, search.cpus_per_worker, search.gpus_per_worker, args,
                         search.torch_backend)
    load_manifest(search.data, verify=True)  # the prepared data the search trained on must still be there
    if not Tuner.can_restore(directory):
        raise ConfigError(f"{directory}: holds no Tune experiment state to resume (the search stopped before it "
                          f"began); start it again instead")
    return search


def _run(search: Search, args: argparse.Namespace, resume: bool, callbacks: Sequence[Any] = (), trackers=None):
    """Start Ray, run (or resume) the search, print the ranked table and the best trial:
    (exit status, the search's ResultGrid or None)."""
    import ray
    from ray import tune

    from raydream.data.prepare import load_manifest
    from raydream.train.loop import TrialSetup
    from raydream.train.trial import trainable

    space, experiment = search.space, search.experiment_dir
    network = space.has_network
    # Ray's own warnings at -v (at the default verbosity raydream says what went wrong)
    logs = {"log_to_driver": args.verbose >= 2, "logging_level": logging.INFO if args.verbose else logging.ERROR,
            "runtime_env": {"env_vars": _train_env(search.stall_timeout)}}
    # Train's clean-up of a run whose trial died asks the dashboard's State API; trials in local
    # mode start no Train workers, and the dashboard's processes cost a search about 7 s on 2
    # cores (docs/benchmarks.md).
    start_ray(args.address, args.num_cpus, args.dashboard or not local_mode_only(space, search.num_workers), **logs)
    started = time.monotonic()
    state_logs = logging.getLogger("ray.tune.execution.experiment_state")
    state_logs.addFilter(superseded_state_copy)
    try:
        cluster = ray.cluster_resources()
        if args.address:
            require_driver_resource(cluster, args.address)
        gpus = worker_gpus(search.gpus_per_worker, network, cluster)
        check_precision(space, search.train_overrides, gpus)
        check_torch_backend(search.torch_backend, gpus)
        plan = plan_resources(cluster, search.num_workers, search.cpus_per_worker, gpus, search.max_concurrent,
                              autoscaling=bool(args.address), train_run=space.model != "random_forest",
                              torch_backend=search.torch_backend)
        # A dataset on this machine's disk is read here, whichever nodes train on it.
        data_node = None if storage.is_remote(search.data) else ray.get_runtime_context().get_node_id()
        setup = TrialSetup(search.data, experiment, search.num_workers, search.cpus_per_worker, gpus,
                           search.keep_checkpoints, search.stall_timeout, search.torch_backend, data_node,
                           manifest=load_manifest(search.data),  # once, for every read of the trials
                           local_mode=True)  # one-worker network trials (`uses_local_mode`)
        _print_header(search, plan, resume)
        if space.model != "random_forest":  # a forest's trials read the splits in their own process
            setup = _read_once(setup, cluster, search.stall_timeout, args.verbose)
            if setup is None:
                return STALLED, None
        watch = SearchStallWatch(search.stall_timeout, plan, search, events=not args.verbose,
                                 budget_s=search.time_budget)
        search.write()  # on --resume too: as this version writes it (with how its trials' configs resolve)
        if resume:
            # the search's callbacks and stopper, pickled in its experiment, unpickle as `watch`
            tuner = tune.Tuner.restore(experiment, trainable(space, setup, plan.cpus_per_trial), resume_unfinished=True)
        else:
            tuner = _new_tuner(search, trainable(space, setup, plan.cpus_per_trial), plan, args.verbose, watch,
                               callbacks)
        baselines = InBackground(_fit_baselines, search.data)  # while the trials train
        grid = tuner.fit()
        if search.repeats and not watch.reason and _search_finished(search, time.monotonic() - started):
            watch = SearchStallWatch(search.stall_timeout, plan, search, events=not args.verbose)
            _run_repeats(search, setup, plan, args.verbose, watch, trackers() if trackers else [])
    finally:
        state_logs.removeFilter(superseded_state_copy)
        ray.shutdown()
    if trackers is not None and trackers.tracking_uri:
        print(f"raydream: MLflow runs in {trackers.tracking_uri} (experiment {storage.name(experiment)})")
    return _finish(search, time.monotonic() - started, watch.reason, baselines), grid


# A temporary file of Tune's own experiment state (".<uuid>-tmp-<name>", renamed once written)
_TUNE_TEMP_FILE = re.compile(r"/\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-tmp-[^/']*'")


def superseded_state_copy(record: logging.LogRecord) -> bool:
    """A logging filter: False for Tune's error that copying the experiment's state to its
    storage path failed because one of Tune's temporary files was gone.

    Tune writes its searcher's state (a temporary file, then renamed) while the previous
    copy of its state directory runs in the background; a copy that listed the temporary
    file before the rename fails, printing an ERROR and a traceback. A later copy carries
    the renamed file: Tune copies its state again within seconds, and once more at the end
    of the search, waiting for that one (seen with two searches at once on 2 cores)."""
    err = record.exc_info[1] if record.exc_info else None
    return not (isinstance(err, FileNotFoundError) and _TUNE_TEMP_FILE.search(str(err)))


def start_ray(address: str | None, num_cpus: int | None, dashboard: bool, **init: Any) -> None:
    """Join the Ray cluster at `address`, or else start a Ray instance of the search's own on
    this machine: `num_cpus` CPUs (None: all) and the trial drivers' resource.

    Without an address, `ray.init()` joins the cluster whose address `ray start` last left in
    Ray's temporary directory, where one runs (and then refuses `num_cpus`); a search without
    --address starts its own instance even then (address "local"), as --help says."""
    import ray

    if address:
        ray.init(address=address, **init)
        return
    # A Train run watches for nodes being drained (spot preemption) with an actor of its own;
    # the machine a local instance runs on is not preempted node by node.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    ray.init(address="local", num_cpus=num_cpus, resources={DRIVER_RESOURCE: 1000}, include_dashboard=dashboard, **init)


def local_mode_only(space: SearchSpace | FamilySpace, num_workers: int) -> bool:
    """Whether every trial of a search trains in Ray Train's local mode (`uses_local_mode`):
    none starts Train workers. A random forest's trials are single processes, and start none
    either."""
    return space.model == "random_forest" or all(uses_local_mode(part.model, num_workers) for part in space.parts)


def _fit_baselines(data: str) -> dict[str, Any]:
    from raydream.train.baselines import stored_baselines

    return stored_baselines(data)


def _train_env(stall_timeout: float) -> dict[str, str]:
    """Ray Train settings for this search's trials, on any cluster (unless set already).

    RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S: how long a Train run waits for its workers'
    placement group before it fails (Train's default 60 s, then retried without end); here
    the stall timeout, after which the trial fails and Tune retries it (see
    `raydream.train.trial`).
    """
    return {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S":
            os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", f"{stall_timeout:g}")}


def _check_local_fit(space: SearchSpace | FamilySpace, num_workers: int, cpus_per_worker: int, gpus_per_worker: float | None,
                     args: argparse.Namespace, torch_backend: str | None = None) -> None:
    """Refuse a trial shape that a Ray instance started on this machine could never run."""
    machine = local_resources(args.num_cpus)
    gpus = worker_gpus(gpus_per_worker, space.has_network, machine)
    check_torch_backend(torch_backend, gpus)
    plan_resources(machine, num_workers, cpus_per_worker, gpus, train_run=space.model != "random_forest",
                   torch_backend=torch_backend)


def _read_once(setup, cluster: dict[str, float], timeout_s: float, verbose: int):
    """`raydream.train.loop.read_once`, saying what it did; None (and an error line) when the
    reads took over `timeout_s` seconds."""
    import ray.data

    from raydream.train.loop import read_once

    # The datasets carry this context to the trials: no progress bars there, nor here.
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.monotonic()
    data_logs = logging.getLogger("ray.data")
    level = data_logs.level
    if not verbose:  # Ray Data's lines about each execution and its progress bars
        data_logs.setLevel(logging.ERROR)
    try:
        read = read_once(setup, cluster.get("object_store_memory", 0.0), timeout_s)
    except TimeoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    finally:
        data_logs.setLevel(level)
    if read.datasets is None:
        say("the train and val splits are larger than a quarter of Ray's object store; each trial reads them itself")
    else:
        rows = sum(d.count() for d in read.datasets.values())
        say(f"the train and val splits ({rows:,} rows) read once into Ray's object store for every trial "
            f"({time.monotonic() - started:.1f} s)")
    return read


def local_resources(num_cpus: int | None) -> dict[str, float]:
    """The CPUs and GPUs a Ray instance started here would have (before it is started)."""
    import torch

    cpus = num_cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return {"CPU": float(cpus), "GPU": float(torch.cuda.device_count())}


def check_cluster_address(address: str, source: str = "--address", timeout_s: float = 10.0) -> None:
    """Refuse, before Ray starts, a cluster address (HOST:PORT of its head's GCS) that nothing
    answers at within `timeout_s` seconds: `ray.init` tries an unreachable address again and
    again for many minutes. 'auto' and Ray Client addresses (ray://...) are left to Ray.

    Raises:
        ConfigError: the address is not HOST:PORT, or no connection to it opened.
    """
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{source} {address!r}: expected HOST:PORT, the address `ray start --head` printed "
                          f"(e.g. 10.0.0.1:6379), 'auto' (the cluster `ray start` started on this machine) or "
                          f"ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        why = f"no answer within {timeout_s:g} s" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise ConfigError(f"{source} {address}: no Ray cluster answers there ({why}); give the address "
                          f"`ray start --head` printed (port 6379 by default), or leave --address out to start "
                          f"Ray on this machine") from None


def require_driver_resource(cluster: dict[str, float], address: str) -> None:
    """Check that a running cluster has somewhere to run trial drivers.

    Raises:
        ConfigError: no node declares the TRIAL_DRIVER resource, saying how to declare it.
    """
    if not cluster.get(DRIVER_RESOURCE):
        raise ConfigError(
            f"the Ray cluster at {address} declares no {DRIVER_RESOURCE} resource, which trial drivers run on; "
            f"give the head node `resources: {{\"{DRIVER_RESOURCE}\": 1000}}` (cluster.yaml does), or start it with "
            f"ray start --head --resources='{{\"{DRIVER_RESOURCE}\": 1000}}'"
        )


def _print_header(search: Search, plan: ResourcePlan, resume: bool) -> None:
    space = search.space
    verb = "resuming" if resume else "experiment"
    print(f"raydream: {verb} {search.experiment_dir}")
    print(f"raydream: space {space.path} ({space.model})")
    print(f"raydream: data {search.data}")
    print(f"raydream: {search.num_samples} trial(s) by {search.search_alg} search, up to {search.max_epochs} "
          f"epoch(s), ASHA grace {search.grace_period}, reduction {search.reduction_factor}"
          + ("" if search.metric == DEFAULT_METRIC else f", by {search.metric} ({search.mode})"))
    local = local_mode_only(space, search.num_workers)
    for line in plan.describe(train_run=space.model != "random_forest", local=local).splitlines():
        print(f"raydream: {line}")
    if search.torch_backend:
        print(f"raydream: torch.distributed backend {search.torch_backend}")
    for note in asha_notes(search.num_samples, search.max_epochs, search.grace_period, search.reduction_factor):
        say(f"note: {note}")
    print(f"raydream: TensorBoard: tensorboard --logdir {search.experiment_dir}")


def _new_tuner(search: Search, trainable_with_resources, plan: ResourcePlan, verbose: int,
               watch: "SearchStallWatch | None" = None, callbacks: Sequence[Any] = ()):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    return tune.Tuner(
        trainable_with_resources,
        param_space=build_param_space(search.space, search.train_overrides),
        tune_config=tune.TuneConfig(
            num_samples=search.num_samples,
            # A trial's process serves the next trial (TrainRunTrial.reset_config; a random
            # forest's function trainable is restarted in place): a 20-trial random-forest
            # --smoke search took 17 s instead of 87 s on 2 cores.
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
            search_alg=_searcher(search, plan.max_concurrent, verbose),
            scheduler=ASHAScheduler(
                time_attr="epoch",  # our own epoch counter: a resumed trial keeps its rungs
                metric=search.metric,
                mode=search.mode,
                max_t=search.max_epochs,
                grace_period=search.grace_period,
                reduction_factor=search.reduction_factor,
            ),
        ),
        run_config=_run_config(search, storage.name(search.experiment_dir), storage.parent(search.experiment_dir),
                               verbose, watch, callbacks),
    )


def trial_dirname(trial) -> str:
    """A trial's directory: TRAINABLE_TRIALID (Tune's default appends every sampled value,
    rounded, which made paths of ~200 characters)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def _run_config(search: Search, name: str, storage_path: str, verbose: int, watch: "SearchStallWatch | None",
                callbacks: Sequence[Any] = ()):
    """The RunConfig of a search's Tune experiment STORAGE_PATH/NAME (a directory, or a URI
    such as s3://...). callbacks: Ray Tune callbacks besides the watch's (loggers, the
    user's own). Tune's status tables are shown with -v; by default the watch says each
    trial event in one line."""
    from ray import tune

    return tune.RunConfig(
        name=name,
        storage_path=storage_path,
        verbose=2 if verbose else 0,
        log_to_file=True,  # each trial driver's stdout/stderr go to files in its directory,
        sync_config=tune.SyncConfig(sync_artifacts=True),  # copied there from Ray's working dir
        failure_config=tune.FailureConfig(max_failures=search.max_failures),
        stop=watch.stopper if watch else None,
        callbacks=([watch.callback] if watch else []) + list(callbacks) or None,
        # Trials that report to Tune directly (random forest) keep their best checkpoints.
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=search.keep_checkpoints, checkpoint_score_attribute=search.metric,
            checkpoint_score_order=search.mode,
        ),
    )


def _search_finished(search: Search, elapsed: float) -> bool:
    """Whether every trial of the search has ended, or its time budget has."""
    if search.time_budget is not None and elapsed >= search.time_budget:
        return True
    return not _unfinished(local_experiment(search.experiment_dir), search.num_samples)


def _unfinished(experiment: Path, num_samples: int = 0) -> int:
    """How many trials of an experiment an interruption left undone: those pending, running or
    paused in Tune's state, and those of its `num_samples` not yet created (Ctrl-C between
    two trials leaves every trial created so far ended, and the rest unsampled)."""
    states = trial_states(experiment)
    if not states:  # no readable state of Tune's: nothing to go on (a search that never started is `stalled`)
        return 0
    started = sum(s in ("PENDING", "RUNNING", "PAUSED") for s, _ in states.values())
    return started + max(0, num_samples - len(states))


def repeat_points(search: Search) -> list[dict[str, Any]]:
    """The configs of the `--repeats` runs: each of the search's top ENSEMBLE_SIZE trials with
    a score, as Tune sampled it (its params.json), with train.seed moved on by 1..repeats and
    REPEAT_OF naming the trial."""
    found = read_experiment(local_experiment(search.experiment_dir))
    table = found.table()
    top = table[table[best_column(search.metric)].notna()].head(ENSEMBLE_SIZE)["trial"].tolist()
    paths = {r.trial_id: r.path for r in found.records}
    points = []
    for trial in top:
        sampled = json.loads((Path(paths[trial]) / "params.json").read_text())
        family = sampled.get(FAMILY)  # a space of families: the trial's own keys are under its family's name
        own = sampled[family] if family else sampled
        for offset in range(1, search.repeats + 1):
            seeded = {**own, "train": {**own["train"], "seed": int(own["train"].get("seed", search.seed)) + offset}}
            points.append({**sampled, **({family: seeded} if family else seeded), REPEAT_OF: trial})
    return points


def _run_repeats(search: Search, setup, plan: ResourcePlan, verbose: int, watch: SearchStallWatch,
                 callbacks: Sequence[Any] = ()) -> None:
    """Train the search's top configurations again with other seeds (`repeat_points`), each for
    all its epochs (no early stopping), as a Tune experiment of its own in REPEATS_DIR; one
    that was interrupted goes on where it stopped."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from raydream.train.trial import trainable

    directory = storage.join(search.experiment_dir, REPEATS_DIR)
    runs = trainable(search.space, dataclasses.replace(setup, experiment_dir=directory), plan.cpus_per_trial)
    if tune.Tuner.can_restore(directory):
        tuner = tune.Tuner.restore(directory, runs, resume_unfinished=True)
    else:
        points = repeat_points(search)
        if not points:  # no trial reported a score (the time budget ran out first): `_finish` says so
            return
        say(f"training the top {len(points) // search.repeats} configuration(s) again with {search.repeats} other "
            f"seed(s) each: {directory}")
        tuner = tune.Tuner(
            runs,
            param_space={**build_param_space(search.space, search.train_overrides), REPEAT_OF: None},
            tune_config=tune.TuneConfig(
                num_samples=len(points), reuse_actors=True,
                search_alg=BasicVariantGenerator(points_to_evaluate=points, max_concurrent=plan.max_concurrent)),
            run_config=_run_config(search, REPEATS_DIR, search.experiment_dir, verbose, watch, callbacks),
        )
    tuner.fit()


def _searcher(search: Search, max_concurrent: int, verbose: int):
    """Random sampling (Tune's BasicVariantGenerator) or Optuna's TPE, seeded, and running at
    most `max_concurrent` trials at a time.

    The limit is set on the searcher itself: `TuneConfig(max_concurrent_trials=...)` is
    ignored (with only a log warning) for a BasicVariantGenerator, and more trials than fit
    would start drivers whose Train runs wait forever for CPUs.
    """
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if search.search_alg == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
        return ConcurrencyLimiter(OptunaSearch(metric=search.metric, mode=search.mode, seed=search.seed), max_concurrent)
    return BasicVariantGenerator(random_state=search.seed, max_concurrent=max_concurrent)


def _finish(search: Search, elapsed: float, stalled: str | None = None,
            fitting: InBackground | None = None) -> int:
    """Write and print the ranked table, with the baselines fitted on the search's splits
    (by `fitting`, started with the search, when given); score the best checkpoints on the
    test split next to the baselines.

    An experiment in an object store is first mirrored here (the trials' files and kept
    checkpoints), and the table is uploaded next to it. stalled: why the search was stopped
    because no trial could start (see `SearchStallWatch`).
    """
    experiment = search.experiment_dir
    # From the trials' files, as `python -m raydream.results` reads them.
    local = local_experiment(experiment)
    table = experiment_table(local)
    csv_path = storage.write_text(storage.join(experiment, RANKED_CSV), table.to_csv(index=False))
    label = METRIC_LABELS[search.metric]
    unfinished = _unfinished(local, search.num_samples)
    out_of_time = search.time_budget is not None and elapsed >= search.time_budget
    best = table.iloc[0] if len(table) else None
    scored = best is not None and math.isfinite(best[best_column(search.metric)])
    baselines = None
    if scored and not stalled and (out_of_time or not unfinished):
        baselines = fitting.result() if fitting is not None else _fit_baselines(search.data)
        storage.write_text(storage.join(experiment, BASELINES_FILE), json.dumps(baselines, indent=1) + "\n")
    print(f"\nTrials ranked by best validation {label}" + (", with the baselines" if baselines else "") + ":")
    print(format_table(with_baselines(table, baselines), width=CONSOLE_WIDTH))
    print(f"\nranked table: {csv_path}")
    if stalled:
        say(f"{stalled}; stopped the search with {unfinished} trial(s) unfinished; once the cluster has room, "
            f"continue it with:\n  python -m raydream.tune --resume {experiment}")
        return STALLED
    if unfinished and not out_of_time:
        say(f"search interrupted with {unfinished} trial(s) unfinished; continue it with:\n"
            f"  python -m raydream.tune --resume {experiment}")
        return INTERRUPTED
    if not scored and out_of_time:
        raise RayDreamError(f"the time budget ({search.time_budget:g} s) ran out before any trial reported a "
                            f"validation score; give a larger --time-budget (see {experiment})")
    if not scored:
        raise RayDreamError(f"no trial reported a validation score; see {experiment}")
    print(f"best trial: {best['trial']} (val {label} {best[best_column(search.metric)]:.4f} at epoch "
          f"{best['best_epoch']})")
    print(f"best checkpoint: {best['checkpoint']}")
    test, ensemble = _test_scores(table["checkpoint"].head(ENSEMBLE_SIZE).tolist(), search.data)
    _summary(search.metric, best, test, ensemble, baselines, _noise_ceilings(search.data))
    if search.repeats:
        return _finish_repeats(search, local, table, test is not None)
    return 0


def _finish_repeats(search: Search, local: Path, table, scored_test: bool) -> int:
    """Print and write the summary of the `--repeats` runs (REPEATS_CSV); say how to go on
    with them when they were interrupted."""
    runs = repeat_runs(local, search.metric)
    if runs is None:
        print(f"raydream: no --repeats run has started; continue with:\n  python -m raydream.tune --resume "
              f"{search.experiment_dir}")
        return INTERRUPTED
    test_scores = None
    if scored_test:
        key = search.metric.removeprefix("val_")
        test_scores = {trial: scores[key] for trial, scores in
                       _each_test_score(runs["trial"].tolist(), runs["checkpoint"].tolist(), search.data).items()}
    summary = summarize_repeats(runs, table, search.metric, test_scores)
    path = storage.write_text(storage.join(search.experiment_dir, REPEATS_CSV), summary.to_csv(index=False))
    epochs = search.max_epochs
    print(f"\nThe top configurations trained again with {search.repeats} other seed(s) each, all {epochs} epochs\n"
          f"(mean +- sd over the seeds; the search's own run, picked for its score, is not in them):")
    print(format_repeats(summary, search.metric))
    print(f"repeats: {path}")
    unfinished = _unfinished(local / REPEATS_DIR, search.repeats * runs[REPEAT_OF].nunique())
    if unfinished:
        say(f"the repeats were interrupted with {unfinished} run(s) unfinished; continue them with:\n"
            f"  python -m raydream.tune --resume {search.experiment_dir}")
        return INTERRUPTED
    return 0


def _each_test_score(trials: Sequence[str], checkpoints: Sequence[str | None], data_dir: str) -> dict[str, dict]:
    """Each trial's checkpoint scored on the test split (trials without one left out)."""
    from raydream.core.metrics import regression_metrics

    predicted = _test_predictions(checkpoints, data_dir)
    if predicted is None:
        return {}
    labels, preds = predicted
    return {trial: regression_metrics(labels, p) for trial, p in zip(trials, preds) if p is not None}


def _noise_ceilings(data_dir: str) -> dict[str, float | None]:
    """A synthetic dataset's noise ceiling (R^2) per split, from its manifest; {} for real
    data or a dataset prepared before the manifest recorded them."""
    from raydream.data.prepare import load_manifest

    return load_manifest(data_dir).get("synthetic", {}).get("noise_ceiling_r2_by_split", {})


def _summary(metric: str, best, test: dict[str, float] | None, ensemble: dict[str, float] | None,
             baselines: dict[str, Any], ceilings: dict[str, float | None]) -> None:
    """The search's models and the baselines side by side (on the test split when there is
    one, else on the validation split), and whether the search beat the k-mer ridge by
    `metric`. A synthetic library's noise ceiling on that split is printed beneath."""
    key = metric.removeprefix("val_")
    ridge = baselines["baselines"]["k-mer ridge"]
    on_test = bool(test and ridge["test"])
    part = "test" if on_test else "val"  # the split the block scores on
    split = "held-out test" if on_test else "validation"
    ours = test if on_test else {m.removeprefix("val_"): float(best[best_column(m) if m == metric else m])
                                 for m in METRICS}
    rows = [("best trial", ours)]
    if ensemble and on_test:
        rows.append((f"mean of the top {ENSEMBLE_SIZE} checkpoints", ensemble))
    rows += [(name, entry[part]) for name, entry in baselines["baselines"].items()]
    width = max(len(name) for name, _ in rows)
    rows_scored = baselines[f"{part}_rows"]
    print(f"\nOn the {split} split (the baselines fit on the first {baselines['fit_rows']:,} training rows\n"
          f"and scored on the first {rows_scored:,} of the split; the k-mer ridge with k = "
          f"{min(ridge['ks'])}-{max(ridge['ks'])} and alpha {ridge['alpha']:g}):")
    for name, scores in rows:
        print(f"  {name:<{width}}  " + ", ".join(
            f"{METRIC_LABELS['val_' + k]} " + ("-" if scores.get(k) is None else f"{scores[k]:.4f}")
            for k in ("r2", "pearson", "spearman", "mse")))
    if ceilings.get(part) is not None:
        print(f"  (noise ceiling of this synthetic library on the whole split: {METRIC_LABELS['val_r2']} "
              f"{ceilings[part]:.4f})")
    theirs = ridge[part][key]
    for name, scores in rows[:2 if ensemble and on_test else 1]:
        verdict = "beats" if better(metric, scores[key], theirs) else "does not beat"
        print(f"the {name} {verdict} the k-mer ridge by {METRIC_LABELS[metric]}: {scores[key]:.4f} against "
              f"{theirs:.4f}")


def console() -> int:
    """The `raydream-tune` command: the same as `python -m raydream.tune`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
