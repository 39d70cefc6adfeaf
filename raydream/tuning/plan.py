"""What a search is, and how its trials fit the cluster (no Ray at import time).

`Search` is everything that defines a search. `python -m raydream.tune` writes it into the
experiment directory as `raydream_search.json` before the first trial starts, and `--resume`
reads it back, so a resumed search runs the same space, budget and trial shape.
`plan_resources` checks a trial shape against the cluster before any trial is launched.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from raydream.core import storage
from raydream.core.errors import ConfigError
from raydream.results.record import SEARCH_FILE, write_record
from raydream.results.table import DEFAULT_METRIC, METRICS
from raydream.tuning.space import FAMILY, SECTIONS, Distribution, FamilySpace, SearchSpace, parse_space
from raydream.train.config import DATA_CPUS_PER_WORKER, DEFAULT_STALL_TIMEOUT_S, DRIVER_RESOURCE, DRIVER_SHARE

SEARCH_ALGS = ("random", "optuna")
# torch.distributed backends a trial's Train workers may be given (Ray Train's TorchConfig);
# left unset, Ray picks NCCL for GPU workers and Gloo for CPU workers.
TORCH_BACKENDS = ("nccl", "gloo")
RECORD_VERSION = 1


@dataclass(frozen=True)
class Search:
    """One search: its space and data, ASHA's budget, the searcher, and each trial's shape.

    train_overrides: TrainConfig fields the command line sets for every trial (max_epochs,
        seed, and train_rows for --smoke).
    time_budget: seconds, or None; max_concurrent: None = as many trials as fit.
    gpus_per_worker: None = one per Train worker when the cluster has GPUs and the model is
        a network, else none (see `worker_gpus`).
    max_failures: times a failed trial is retried from its last checkpoint.
    stall_timeout: seconds a trial may report no epoch, and the search may wait for a trial
        to start, before it gives up (see `raydream.train.trial`).
    torch_backend: the Train workers' torch.distributed backend (TORCH_BACKENDS), or None
        for Ray's choice.
    metric: the validation metric (`raydream.results.table.METRICS`) that ASHA stops trials by,
        the searcher learns from, Tune keeps checkpoints by and the table is ranked by.
    repeats: seeds each of the top configurations is trained again with once the search
        has finished (0: none).
    """

    space: SearchSpace | FamilySpace
    data: str
    experiment_dir: str
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: int
    search_alg: str = "random"
    seed: int = 0
    num_workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float | None = None
    max_concurrent: int | None = None
    time_budget: float | None = None
    keep_checkpoints: int = 1
    max_failures: int = 1
    train_overrides: dict[str, Any] = field(default_factory=dict)
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_S
    torch_backend: str | None = None
    metric: str = DEFAULT_METRIC
    repeats: int = 0

    @property
    def mode(self) -> str:
        """"max" or "min": which way `metric` is better."""
        return METRICS[self.metric]

    def to_record(self) -> dict[str, Any]:
        """The JSON record of the search (`raydream.results` reads the first keys)."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("space", "experiment_dir")}
        return {
            "version": RECORD_VERSION,
            "space": str(self.space.path.resolve()),
            "model": self.space.model,
            "sampled_keys": self.space.sampled_keys(),
            **settings,
            "space_yaml": self.space.text,
            "resolution": self.space.resolution(),
        }

    def write(self) -> str:
        """Write the record into the experiment directory or URI (atomically)."""
        return write_record(self.experiment_dir, self.to_record())

    @classmethod
    def read(cls, experiment_dir: str | os.PathLike) -> "Search":
        """The search recorded in an experiment directory or URI (moved directories work too).

        Raises:
            ConfigError: no record, or one this version cannot resume.
        """
        directory = str(experiment_dir)
        path = storage.join(directory, SEARCH_FILE)
        if not storage.is_file(path):
            raise ConfigError(f"{directory}: not a raydream experiment (no {SEARCH_FILE}); give the directory "
                              f"STORAGE_PATH/NAME that the search printed when it started")
        try:
            record = json.loads(storage.read_text(path))
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION or "space_yaml" not in record:
            version = record.get("version") if isinstance(record, dict) else None
            raise ConfigError(f"{path}: written by another raydream version (record version "
                              f"{version!r}, expected {RECORD_VERSION}); it cannot be resumed")
        try:
            space = parse_space(str(record["space_yaml"]), str(record.get("space", SEARCH_FILE)))
        except ConfigError as err:
            raise ConfigError(f"{path}: its recorded space (space_yaml) is invalid: {err}") from None
        settings = {f.name: record[f.name] for f in fields(cls) if f.name in record and f.name != "space"}
        search = cls(space=space, **{**settings, "experiment_dir": directory})
        problem = _record_problem(search)
        if problem:
            raise ConfigError(f"{path}: {problem}; the record is damaged")
        return search


def _record_problem(search: "Search") -> str | None:
    """What is wrong with the types and ranges of a read search record, or None."""
    ints = {"num_samples": 1, "max_epochs": 1, "grace_period": 1, "reduction_factor": 2, "seed": 0,
            "num_workers": 1, "cpus_per_worker": 1, "keep_checkpoints": 1, "max_failures": 0,
            "repeats": 0}
    for name, low in ints.items():
        value = getattr(search, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            return f"{name} must be an integer >= {low}, got {value!r}"
    for name in ("data", "search_alg"):
        if not isinstance(getattr(search, name), str):
            return f"{name} must be a string, got {getattr(search, name)!r}"
    if search.metric not in METRICS:
        return f"metric must be one of {', '.join(METRICS)}, got {search.metric!r}"
    if search.search_alg not in SEARCH_ALGS:
        return f"search_alg must be one of {', '.join(SEARCH_ALGS)}, got {search.search_alg!r}"
    if search.torch_backend is not None and search.torch_backend not in TORCH_BACKENDS:
        return f"torch_backend must be one of {', '.join(TORCH_BACKENDS)} or null, got {search.torch_backend!r}"
    if search.max_concurrent is not None and (not isinstance(search.max_concurrent, int) or search.max_concurrent < 1):
        return f"max_concurrent must be an integer >= 1 or null, got {search.max_concurrent!r}"
    for name in ("gpus_per_worker", "time_budget"):
        value = getattr(search, name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not math.isfinite(value) or value < 0):
            return f"{name} must be a number >= 0 or null, got {value!r}"
    if not isinstance(search.stall_timeout, (int, float)) or not 0 < search.stall_timeout < math.inf:
        return f"stall_timeout must be a number > 0, got {search.stall_timeout!r}"
    if not isinstance(search.train_overrides, dict):
        return f"train_overrides must be a mapping, got {search.train_overrides!r}"
    return None


def space_changes(old: SearchSpace | FamilySpace, new: SearchSpace | FamilySpace, prefix: str = "") -> list[str]:
    """Human-readable differences between two spaces ("train.lr: ... -> ..."), model first;
    those of a family named "families.NAME.train.lr"."""
    if isinstance(old, FamilySpace) or isinstance(new, FamilySpace):
        before = old.families if isinstance(old, FamilySpace) else {}
        after = new.families if isinstance(new, FamilySpace) else {}
        if not before or not after:
            return [f"families: {list(before) or 'none'} -> {list(after) or 'none'}"]
        if list(before) != list(after):
            return [f"families: {list(before)} -> {list(after)}"]
        return [c for name in before for c in space_changes(before[name], after[name], f"families.{name}.")]
    changes = [f"{prefix}model: {old.model} -> {new.model}"] if old.model != new.model else []
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        for key in sorted(set(before) | set(after)):
            if before.get(key, "unset") != after.get(key, "unset"):
                changes.append(f"{prefix}{section}.{key}: {_show(before.get(key, 'unset'))} -> "
                               f"{_show(after.get(key, 'unset'))}")
    return changes


def _show(value: Any) -> str:
    if isinstance(value, Distribution):
        shown = f"{value.kind} {list(value.args)}"
        return shown + (f" when {dict((k, list(v)) for k, v in value.when)}" if value.when else "")
    return repr(value)


@dataclass(frozen=True)
class ResourcePlan:
    """How trials fit the cluster.

    cpus_per_trial, gpus_per_trial: everything one trial reserves (its Train workers' own
        CPUs, plus data_cpus_per_trial for the Ray Data reads of their data).
    max_concurrent: trials that can run at once.
    waits_for_nodes: the trial does not fit the cluster as it is now, and runs once its
        autoscaler has added nodes.
    """

    total_cpus: float
    total_gpus: float
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int
    data_cpus_per_trial: float = 0.0
    waits_for_nodes: bool = False

    def describe(self, train_run: bool = True, local: bool = False) -> str:
        """Two lines (a trial's resources; the cluster's and how many trials fit);
        train_run=False for trials that hold their CPUs themselves (no Train run); local for
        Train runs in Ray Train's local mode (their one worker's loop in the trial's process)."""
        gpus = f" + {self.gpus_per_trial:g} GPU" if self.gpus_per_trial else ""
        if train_run and local:
            holder = f"the trial's process, in Ray Train local mode ({self.data_cpus_per_trial:g} CPU for Ray Data reads)"
        elif train_run:
            holder = (f"Train workers ({self.data_cpus_per_trial:g} of the CPUs for their Ray Data reads) + a "
                      f"driver on {DRIVER_SHARE} {DRIVER_RESOURCE}")
        else:
            holder = "the trial process"
        fits = " as its autoscaler adds nodes" if self.waits_for_nodes else ""
        return (
            f"each trial: {self.cpus_per_trial:g} CPU{gpus} for {holder}\n"
            f"cluster {self.total_cpus:g} CPU / {self.total_gpus:g} GPU -> "
            f"up to {self.max_concurrent} trial(s) at a time{fits}"
        )


def plan_resources(
    cluster: dict[str, float],
    num_workers: int,
    cpus_per_worker: int,
    gpus_per_worker: float = 0.0,
    max_concurrent: int | None = None,
    autoscaling: bool = False,
    train_run: bool = True,
    torch_backend: str | None = None,
) -> ResourcePlan:
    """Check that one trial can be scheduled, and how many fit at once (at most
    `max_concurrent`, when given).

    A trial reserves everything it uses before it starts: a Train run's workers each hold
    `cpus_per_worker` CPUs plus DATA_CPUS_PER_WORKER for the Ray Data reads of their data
    (train_run=False: a trial that reads its data itself holds `cpus_per_worker` CPUs).

    autoscaling: the cluster may add nodes (one joined with --address). A trial that does not
        fit it now is then accepted, and runs `max_concurrent` at a time as nodes come up.
    torch_backend: see `check_trial_shape`.

    Raises:
        ConfigError: the trial shape can never be scheduled, or (autoscaling) does not fit
            now and `max_concurrent` is not given, saying why.
    """
    check_trial_shape(num_workers, cpus_per_worker, gpus_per_worker, torch_backend)
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    data_cpus = num_workers * DATA_CPUS_PER_WORKER if train_run else 0
    per_trial_cpu = num_workers * cpus_per_worker + data_cpus
    per_trial_gpu = num_workers * gpus_per_worker
    problem = None
    if per_trial_cpu > cpus:
        reads = f" + {data_cpus} for Ray Data" if data_cpus else ""
        problem = (f"a trial needs {num_workers} worker(s) x {cpus_per_worker} CPU{reads} = {per_trial_cpu} CPU, "
                   f"but the cluster has {cpus:g} CPU")
    elif per_trial_gpu > gpus:
        problem = (f"a trial needs {num_workers} worker(s) x {gpus_per_worker:g} GPU = {per_trial_gpu:g} GPU, "
                   f"but the cluster has {gpus:g} GPU")
    if problem and not autoscaling:
        raise ConfigError(f"{problem}; lower --num-workers, --cpus-per-worker or --gpus-per-worker")
    if problem:
        if max_concurrent is None:
            raise ConfigError(f"{problem} now; if its autoscaler adds nodes, say how many trials may run at once "
                              f"with --max-concurrent N (cluster.yaml's GPU workers: one trial per node)")
        return ResourcePlan(cpus, gpus, per_trial_cpu, per_trial_gpu, max_concurrent, data_cpus, waits_for_nodes=True)
    concurrent = int(cpus // per_trial_cpu)
    if per_trial_gpu:
        concurrent = min(concurrent, int(gpus // per_trial_gpu))
    concurrent = max(1, concurrent)
    if max_concurrent is not None:
        # On an autoscaling cluster more trials than fit now can run once nodes are added.
        concurrent = max_concurrent if autoscaling else min(concurrent, max_concurrent)
    return ResourcePlan(cpus, gpus, per_trial_cpu, per_trial_gpu, concurrent, data_cpus)


def check_trial_shape(num_workers: int, cpus_per_worker: int, gpus_per_worker: float = 0.0,
                      torch_backend: str | None = None) -> None:
    """The trial-shape flags on their own, before anything is known of the cluster.

    torch_backend: "gloo" lets the workers of one trial share a GPU (a fraction each), which
        NCCL, Ray's backend for GPU workers, refuses.

    Raises:
        ConfigError: naming the flag and what it must be.
    """
    if num_workers < 1:
        raise ConfigError(f"--num-workers must be >= 1, got {num_workers}")
    if cpus_per_worker < 1:
        raise ConfigError(f"--cpus-per-worker must be >= 1, got {cpus_per_worker}")
    if not math.isfinite(gpus_per_worker) or gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be a number >= 0, got {gpus_per_worker:g}")
    if num_workers > 1 and 0 < gpus_per_worker < 1 and torch_backend != "gloo":
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g} with --num-workers {num_workers}: two workers of a "
                          f"trial could share one GPU, which NCCL refuses; add --torch-backend gloo (slower "
                          f"collectives), or share GPUs between one-worker trials")


def check_torch_backend(torch_backend: str | None, gpus_per_worker: float) -> None:
    """Refuse NCCL for Train workers that get no GPU (it reduces CUDA tensors only).

    Raises:
        ConfigError: --torch-backend nccl with CPU workers.
    """
    if torch_backend == "nccl" and not gpus_per_worker:
        raise ConfigError("--torch-backend nccl needs GPU workers (it reduces CUDA tensors only), but the trials get "
                          "no GPU; leave it out, or give --gpus-per-worker on a cluster with GPUs")


def worker_gpus(requested: float | None, network: bool, cluster: dict[str, float]) -> float:
    """GPUs per Train worker: as requested, else 1 for a network when the cluster has GPUs.

    Raises:
        ConfigError: GPUs requested for a model that trains on CPUs (trees).
    """
    if requested is None:
        return 1.0 if network and cluster.get("GPU", 0) > 0 else 0.0
    if requested > 0 and not network:
        raise ConfigError("tree models (lightgbm, random_forest) train on CPUs; leave out --gpus-per-worker")
    return float(requested)


def check_precision(space: SearchSpace | FamilySpace, train_overrides: dict[str, Any], gpus_per_worker: float) -> None:
    """Refuse fp16 training without GPUs before any trial starts (bf16 also runs on CPUs).

    Raises:
        ConfigError: fp16 is set, or sampled, for trials that get no GPU.
    """
    values = []
    for part in space.parts:
        precision = train_overrides.get("precision", part.train.get("precision", "fp32"))
        values += precision.args if isinstance(precision, Distribution) and precision.kind == "choice" else [precision]
    if "fp16" in values and not gpus_per_worker:
        raise ConfigError("precision fp16 needs GPUs (its loss scaling is CUDA's) but the trials get none; use bf16, "
                          "or --gpus-per-worker on a cluster with GPUs")


def asha_notes(num_samples: int, max_epochs: int, grace_period: int, reduction_factor: int) -> list[str]:
    """Settings under which ASHA cannot stop any trial, each said in one line (none: ASHA works)."""
    notes = []
    if grace_period >= max_epochs:
        notes.append(f"ASHA cannot stop a trial early: its grace period ({grace_period} epoch(s)) reaches the last "
                     f"epoch ({max_epochs}); lower --grace-period below --max-epochs")
    if num_samples < reduction_factor:
        notes.append(f"ASHA stops a trial only when it is in the bottom of {reduction_factor} or more trials at a "
                     f"rung; with {num_samples} trial(s) it stops none; raise --num-samples")
    return notes


def to_tune_domain(value: Any) -> Any:
    """A spaces.Distribution as a Ray Tune search domain; constants pass through.

    Choices among lists (e.g. LegNet's block widths) become choices among their JSON text,
    which `SearchSpace.resolve` decodes in the trial.
    """
    from ray import tune

    if not isinstance(value, Distribution):
        return value
    a = value.args
    if value.kind == "choice":
        return tune.choice([json.dumps(v) for v in a] if value.encoded else list(a))
    if value.kind == "uniform":
        return tune.uniform(a[0], a[1])
    if value.kind == "loguniform":
        return tune.loguniform(a[0], a[1])
    if value.kind == "randint":
        return tune.randint(a[0], a[1])
    if all(isinstance(x, int) for x in a):  # keep integer fields integers
        return tune.qrandint(a[0], a[1], a[2])
    return tune.quniform(a[0], a[1], a[2])


def build_param_space(space: SearchSpace | FamilySpace, train_overrides: dict[str, Any]) -> dict[str, Any]:
    """Tune's param_space: {"model", "model_config", "train"} with Tune domains inside; for a
    space of families, {FAMILY: a choice of their names, NAME: that family's param_space, ...}."""
    if isinstance(space, FamilySpace):
        from ray import tune

        return {FAMILY: tune.choice(list(space.families)),
                **{name: build_param_space(sub, train_overrides) for name, sub in space.families.items()}}
    train = {**space.train, **train_overrides}
    return {
        "model": space.model,
        "model_config": {k: to_tune_domain(v) for k, v in space.model_config.items()},
        "train": {k: to_tune_domain(v) for k, v in train.items()},
    }

