"""The Ray Train per-worker loop, and the TorchTrainer that runs it for one trial.

Each worker reads its shard of the Ray Datasets with `ray.train.get_dataset_shard` (the
splits a search read once into the object store, `read_once`, or the Parquet shards
themselves), keeps its rows in memory when they fit (`TrainingRows`), one-hot encodes
batches itself (cheap, vectorised; keeps the Ray Data pipeline a plain read), and trains
with the recipe named by `train.optimizer`.

Validation is exact: Ray Train's split of a dataset between workers is an *equal* split,
which may drop up to (workers - 1) rows, so the validation set is not split. Every worker
reads all of it in file order and predicts every (world size)-th row; the predictions of all
workers are gathered before scoring, so the metrics are those a single process would
compute over the whole split.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raydream.train.checkpoint import save_checkpoint
from raydream.core.metrics import regression_metrics
from raydream.core.seeding import seed_everything
from raydream.train.config import (DATA_CPUS_PER_WORKER, DEFAULT_STALL_TIMEOUT_S, TrainConfig, TrialConfig,
                                   build_model_config, uses_local_mode)
from raydream.train.run_link import ForwardReports
from raydream.train.steps import CODES, encode_batch, input_codes, model_and_recipe, predict, train_epoch
from raydream.train.weights import DensityWeights

if TYPE_CHECKING:
    import pyarrow as pa

# The label Ray gives every node, its node ID (ray._raylet.RAY_NODE_ID_KEY).
NODE_ID_LABEL = "ray.io/node-id"

# Rows held by each worker's local shuffle buffer, in batches.
SHUFFLE_BATCHES = 16


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a search shares (not searched).

    data_dir: prepared dataset directory (see raydream.data.prepare).
    experiment_dir: the Tune experiment's storage directory; each trial's Train run and
        checkpoints go under experiment_dir/<trial dir name>/train.
    num_workers: data-parallel Ray Train workers per trial.
    cpus_per_worker: CPUs each worker holds (also its torch thread count).
    gpus_per_worker: GPUs each worker holds (0: trains on CPU; a fraction shares a GPU).
    keep_checkpoints: checkpoints Tune keeps per trial, the best by val_r2 (and the latest).
    stall_timeout: seconds a trial may report no epoch before it fails (at least three times
        its slowest epoch).
    torch_backend: the workers' torch.distributed backend ("nccl", "gloo"), or None for Ray
        Train's choice (NCCL on GPUs, Gloo on CPUs).
    data_node: the Ray node ID of the machine whose disk holds `data_dir`, or None when every
        node can read it (an object-store URI). Every read of a local dataset runs there, and
        its rows reach the workers on other nodes through Ray's object store, so a dataset on
        the head's disk (the embedded sample, prepared into ~/.cache) trains on any cluster.
    datasets: the train and val splits as Ray Datasets read once for the whole search
        (`read_once`), or None: each trial's Train run reads the shards itself.
    manifest: the dataset's manifest (`raydream.data.prepare.load_manifest`), loaded once by
        the search; every read of a trial finds the shards in it. None: each read loads it.
    local_mode: a one-worker trial's Train run runs its worker's loop in the trial's own
        process (Ray Train's local mode, `ScalingConfig(num_workers=0)`), with the worker's
        CPUs (and GPUs) held by the trial itself (`runs_locally`).
    """

    data_dir: str
    experiment_dir: str
    num_workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    keep_checkpoints: int = 1
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_S
    torch_backend: str | None = None
    data_node: str | None = None
    datasets: Mapping[str, Any] | None = None
    manifest: Mapping[str, Any] | None = None
    local_mode: bool = False


def runs_locally(setup: TrialSetup, model: str) -> bool:
    """Whether a trial of `model` runs its Train run in Ray Train's local mode: a network,
    in a search whose one-worker trials do (`setup.local_mode`, `uses_local_mode`)."""
    return setup.local_mode and uses_local_mode(model, setup.num_workers)


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _rows_of_rank(batches: Iterable[dict], rank: int, world_size: int) -> Iterator[dict]:
    """This worker's share of an ordered batch stream: rows i with i % world_size == rank."""
    offset = 0
    for batch in batches:
        n = len(batch["expression"])
        keep = (np.arange(offset, offset + n) % world_size) == rank
        offset += n
        if keep.any():
            yield {key: value[keep] for key, value in batch.items()}


def _gather(array: np.ndarray) -> np.ndarray:
    """Concatenate a per-worker array across all workers (rank order)."""
    if not _is_distributed():
        return array
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)


def _sync_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every worker.

    Each DDP worker updates its own running statistics; all workers must validate the model
    that rank 0 checkpoints. DDP usually re-broadcasts buffers on forward, but whether it
    does depends on its settings, so evaluation does not rely on it.
    """
    if _is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def _sum_across_workers(device: torch.device, *values: float) -> list[float]:
    """Sum each value over all workers. The tensor lives on the worker's device: NCCL, the
    backend of GPU workers, reduces CUDA tensors only."""
    if not _is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _every_worker(device: torch.device, holds: bool) -> bool:
    """Whether `holds` is true on every worker (on the worker's device, as NCCL needs)."""
    if not _is_distributed():
        return holds
    t = torch.tensor([int(holds)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def epoch_batches(shard: "ray.data.DataIterator", tcfg: TrainConfig, epoch: int, rank: int) -> Iterator[dict]:
    """One epoch of a worker's training shard: numpy batches of `tcfg.batch_size`, shuffled
    within a window of SHUFFLE_BATCHES batches, in an order set by seed, epoch and rank.

    The shards of all workers together hold every training row once (Ray Train's equal split
    may leave out up to (workers - 1) rows, so that all workers take the same number of steps).
    """
    return shard.iter_batches(
        batch_size=tcfg.batch_size,
        batch_format="numpy",
        local_shuffle_buffer_size=tcfg.batch_size * SHUFFLE_BATCHES,
        local_shuffle_seed=tcfg.seed * 1000 + epoch * 10 + rank,
    )


def available_memory() -> int | None:
    """Bytes of memory this node can still give out (Linux's MemAvailable, else its free
    pages), or None where neither can be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class TrainingRows:
    """A worker's training batches for each epoch.

    With `keep`, the worker reads its shard of the train split through Ray Data once, in its
    first epoch, in order (the first `limit` rows, 0: all), and keeps it, already encoded as
    the model's byte matrix (`input_codes`); every epoch is then a full permutation of those
    rows in memory, seeded by seed, epoch and rank. Without `keep` (the rows would not fit),
    every epoch reads the shard through Ray Data again, shuffled within a window of
    SHUFFLE_BATCHES batches, and `limit` cuts that stream.

    Kept, an epoch costs no Ray Data execution (a new one starts with every read of a
    dataset: about 2 s an epoch in the quick start's trials on 2 cores) and no encoding. With
    several workers, each keeps the rows its first read gave it; all of them together still
    hold every training row once.
    """

    def __init__(self, shard: "ray.data.DataIterator", tcfg: TrainConfig, rank: int, keep: bool,
                 limit: int = 0) -> None:
        self._shard, self._tcfg, self._rank, self._keep, self._limit = shard, tcfg, rank, keep, limit
        self._codes: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    @property
    def kept(self) -> bool:
        """Whether the rows are held in memory."""
        return self._codes is not None

    def epoch(self, epoch: int) -> Iterator[dict]:
        if self._keep and self._codes is None:
            self._read()
        if self._codes is None:
            yield from first_rows(epoch_batches(self._shard, self._tcfg, epoch, self._rank), self._limit)
            return
        rng = np.random.default_rng([self._tcfg.seed, epoch, self._rank])
        yield from self._kept(rng.permutation(len(self._labels)))

    def in_order(self) -> Iterator[dict]:
        """All the rows once, unshuffled (SWA's BatchNorm pass)."""
        if self._codes is None:
            yield from self._stream()
            return
        yield from self._kept(np.arange(len(self._labels)))

    def _kept(self, order: np.ndarray) -> Iterator[dict]:
        """The kept rows in `order`, in batches."""
        for start in range(0, len(order), self._tcfg.batch_size):
            rows = order[start:start + self._tcfg.batch_size]
            yield {CODES: self._codes[rows], "expression": self._labels[rows]}

    def _stream(self) -> Iterator[dict]:
        return first_rows(self._shard.iter_batches(batch_size=self._tcfg.batch_size, batch_format="numpy"),
                          self._limit)

    def _read(self) -> None:
        codes, labels = [np.zeros((0, self._tcfg.seq_len), np.uint8)], [np.zeros(0)]
        for batch in self._stream():
            codes.append(input_codes(batch, self._tcfg))
            labels.append(np.asarray(batch["expression"], dtype=np.float64))
        self._codes, self._labels = np.concatenate(codes), np.concatenate(labels)


def first_rows(batches: Iterable[dict], limit: int) -> Iterator[dict]:
    """The batches up to the first `limit` rows (0: all of them), the last one cut short.

    Workers cut their datasets to train_rows / val_rows this way when the search read the
    splits once (`read_once`): a Ray Data limit on a materialized dataset slices its blocks
    with tasks of its own, which took ~1.3 s of each trial's first epoch on 2 cores.
    """
    left = limit
    for batch in batches:
        if limit:
            if left <= 0:
                return
            n = len(batch["expression"])
            if n > left:
                batch = {key: value[:left] for key, value in batch.items()}
            left -= n
        yield batch


def keeps_rows(tcfg: TrainConfig, rows: int, free_bytes: int | None) -> bool:
    """Whether a worker keeps its `rows` training rows in memory: `tcfg.cache_rows`, and the
    encoded rows (seq_len bytes and a float64 label each) take at most a quarter of
    `free_bytes` (the node's available memory; None: unknown, not kept)."""
    return tcfg.cache_rows and free_bytes is not None and rows * (tcfg.seq_len + 8) <= free_bytes / 4


def _timed(batches: Iterable[dict], clock: list[float]) -> Iterator[dict]:
    """`batches`, adding the seconds spent waiting for each one to clock[0]."""
    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            clock[0] += time.perf_counter() - started
        yield batch


def starting_checkpoint(loop_config: dict) -> "ray.train.Checkpoint | None":
    """Where a worker starts from: Ray Train's latest checkpoint when Train restarts its
    workers, else `loop_config["resume_checkpoint"]` when the trial is resumed."""
    return ray.train.get_checkpoint() or loop_config.get("resume_checkpoint")


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train worker entry point.

    loop_config: {"model": name, "model_config": its typed config, "train": a TrainConfig} (typed
        once by `build_trainer`),
        "steps_per_epoch" (batches per worker per epoch, for per-batch schedules),
        "torch_threads", "weights" (DensityWeights for the loss, or None),
        "resume_checkpoint" (a `ray.train.Checkpoint` to go on from, or None) and, in local
        mode only, "report_to" (the trial's `ForwardReports`, which hands each report over
        and waits until the trial has copied its checkpoint; raises `RunEnded` when the
        trial stops the run).
    Reports per epoch: epoch, train_loss, val_r2, val_pearson, val_spearman, val_mse, lr,
    optimizer (the recipe's phase), workers (the world size), train_samples_per_s (training
    rows of all workers per second of the epoch's training pass: reading, encoding and
    steps), data_s (seconds of that pass spent waiting for batches), rows_kept (whether the
    worker holds its training rows in memory, `TrainingRows`), epoch_s (seconds of this
    worker's training pass and validation; the checkpoint's write is not in it), and a
    checkpoint (Tune keeps the best by the search's metric and the latest).
    """
    name, mcfg, tcfg = loop_config["model"], loop_config["model_config"], loop_config["train"]
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    generator = seed_everything(tcfg.seed + rank)
    torch.set_num_threads(max(1, int(loop_config.get("torch_threads", 1))))
    device = ray.train.torch.get_device()

    if device.type == "cuda":  # NCCL and all_gather_object use the current CUDA device
        torch.cuda.set_device(device)

    checkpoint = starting_checkpoint(loop_config)
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as directory:
        raw, recipe, start_epoch, best_r2 = model_and_recipe(
            name, mcfg, tcfg, int(loop_config.get("steps_per_epoch", 1)), device, directory)
    model = ray.train.torch.prepare_model(raw)

    rows_per_worker = int(loop_config.get("steps_per_epoch", 1)) * tcfg.batch_size
    # All workers keep their rows or none does: a worker that streamed its share of a split
    # dataset every epoch would wait for the others to start each epoch's read with it.
    keep = _every_worker(device, keeps_rows(tcfg, rows_per_worker, available_memory()))
    training = TrainingRows(ray.train.get_dataset_shard("train"), tcfg, rank, keep,
                            max(1, tcfg.train_rows // world_size) if tcfg.train_rows else 0)
    val_shard = ray.train.get_dataset_shard("val")

    def train_inputs():  # unshuffled, unaugmented training inputs (SWA's BatchNorm pass)
        for batch in training.in_order():
            yield encode_batch(batch, tcfg, device)[0]

    # This worker's share of the validation rows, read and encoded on the first epoch. Every
    # read of a dataset is a new Ray Data execution, and one of even a few rows took ~9 s per
    # epoch on 2 cores. The full DREAM validation split is ~74 MB as 110-byte rows, shared
    # out between the workers.
    val_share: list[dict] | None = None
    for epoch in range(start_epoch, tcfg.max_epochs + 1):
        recipe.start_epoch(epoch)
        waited = [0.0]
        started = time.perf_counter()
        loss_sum, count = train_epoch(model, recipe, _timed(training.epoch(epoch), waited), tcfg, device, generator,
                                      loop_config.get("weights"))
        train_s = time.perf_counter() - started  # reading, encoding and steps, validation excluded
        loss_sum, count = _sum_across_workers(device, loss_sum, count)

        evaluated = recipe.eval_model(raw, train_inputs)
        _sync_buffers(evaluated)
        if val_share is None:  # read once, kept for the later epochs
            val_batches = first_rows(val_shard.iter_batches(batch_size=max(tcfg.batch_size, 256), batch_format="numpy"),
                                     tcfg.val_rows)
            val_share = [{CODES: input_codes(b, tcfg), "expression": b["expression"]}
                         for b in _rows_of_rank(val_batches, rank, world_size)]
        preds, labels = predict(evaluated, val_share, tcfg, device)
        scores = regression_metrics(_gather(labels), _gather(preds))
        recipe.end_epoch(scores["mse"])
        best_r2 = max(best_r2, scores["r2"])
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / max(count, 1),
            **{f"val_{k}": v for k, v in scores.items()},
            "lr": recipe.lr,
            "optimizer": recipe.phase,
            "workers": world_size,
            "train_samples_per_s": count / max(train_s, 1e-9),  # all workers' rows / this worker's time
            "data_s": waited[0],  # of the training pass, waiting for batches (reads, shuffles)
            "rows_kept": training.kept,
            # Timed here: the controller sees a report only when it next polls the workers.
            "epoch_s": time.perf_counter() - started,
        }
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                save_checkpoint(
                    tmp,
                    evaluated,
                    name,
                    mcfg,
                    tcfg,
                    epoch,
                    {**metrics, "best_val_r2": best_r2},
                    optimizer_state=recipe.state_dict(),
                    train_model=raw if evaluated is not raw else None,
                )
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)
            if "report_to" in loop_config:  # local mode: no controller forwards the report
                loop_config["report_to"].hand_over(metrics, checkpoint)


def read_table(setup: TrialSetup, split: str, columns: tuple[str, ...] = ("sequence", "expression"),
               limit: int = 0) -> "pa.Table":
    """One split of the trial's dataset as a pyarrow Table (`raydream.data.prepare.read_split`),
    read where the data is: in this process on the data node (or from an object store), else
    by a zero-CPU task on the data node whose table comes back through the object store."""
    from raydream.data.prepare import read_split

    if setup.data_node is None or ray.get_runtime_context().get_node_id() == setup.data_node:
        return read_split(setup.data_dir, split, columns, limit, setup.manifest)
    task = ray.remote(read_split).options(num_cpus=0, label_selector=_on_node(setup.data_node))
    try:
        return ray.get(task.remote(setup.data_dir, split, columns, limit, setup.manifest), timeout=setup.stall_timeout)
    except ray.exceptions.GetTimeoutError:
        raise TimeoutError(f"reading the {split} split of {setup.data_dir} on node {setup.data_node} (the node "
                           f"that holds it) took over {setup.stall_timeout:g} s") from None


def _on_node(node: str) -> dict[str, str]:
    """The label selector of a task that must run on the node with ID `node`: Ray labels
    every node with its ID (as Ray Data pins the reads of a local-only datasource)."""
    return {NODE_ID_LABEL: node}


def training_labels(setup: TrialSetup, tcfg: TrainConfig) -> np.ndarray:
    """Expression values of the rows the trial trains on."""
    return read_table(setup, "train", columns=("expression",), limit=tcfg.train_rows).column("expression").to_numpy()


def starting_output(name: str, labels: np.ndarray) -> dict[str, float]:
    """{"initial_prediction": mean of `labels`} for a network whose config has that field,
    else {}: the network's untrained output (a regression value, or a bin model's expected
    bin) then starts at the training mean, so that its first epochs' R^2 measures what it
    learned rather than how far a fixed starting offset was from this dataset's scale. A
    mean <= 0 (not an expression level; ResNet's softplus output cannot start there) leaves
    the model's default."""
    from dataclasses import fields

    from raydream.models.registry import model_config_class

    if len(labels) == 0 or "initial_prediction" not in {f.name for f in fields(model_config_class(name))}:
        return {}
    mean = float(np.mean(labels))
    return {"initial_prediction": mean} if math.isfinite(mean) and mean > 0 else {}


def density_weights(labels: np.ndarray, tcfg: TrainConfig) -> DensityWeights | None:
    """The training split's inverse-density weights, when `tcfg.density_weights` asks for them."""
    if not tcfg.density_weights:
        return None
    return DensityWeights.fit(labels, bins=tcfg.weight_bins, cap=tcfg.weight_cap)


def read_shards(data_dir: str, split: str, concurrency: int = 1, node: str | None = None,
                manifest: Mapping[str, Any] | None = None) -> "ray.data.Dataset":
    """One split of a prepared dataset (local, shared, or object-store shards) as a Ray Dataset,
    its read tasks on `node` (a Ray node ID; None: anywhere, Ray Data spreads them).

    The read tasks ask Ray for no CPU and at most `concurrency` run at once: the Train workers
    reserve their CPUs (DATA_CPUS_PER_WORKER each). A read task that asked for a CPU of its
    own would wait for one outside every reservation, and on a cluster whose CPUs are all
    reserved (another trial, another search) it waited forever: Ray Data logged "Cluster
    resources are not enough to run any task from TaskPoolMapOperator[ReadParquet]".

    Read with Ray Data's first Parquet datasource, not Ray 2.60's default one, which
    (measured on 2 cores, docs/benchmarks.md) ran its ListFiles tasks on a node other than
    `node` in a 3-node cluster (its label selector does not reach them: files on the head's
    disk would not be found there) and took 5.3-8.1 s to read the embedded sample's train and
    val splits into the object store, against 1.6-2.3 s. Only splits too large for the search to
    read once (`read_once`) are read this way, by each trial.
    """
    from raydream.core import storage
    from raydream.data.prepare import split_files

    fs, files = storage.arrow_paths(split_files(data_dir, split, manifest))
    context = ray.data.DataContext.get_current()
    saved, context.use_datasource_v2 = context.use_datasource_v2, False
    try:
        return ray.data.read_parquet(files, filesystem=fs, num_cpus=0, concurrency=concurrency,
                                     label_selector=_on_node(node) if node else None)
    finally:
        context.use_datasource_v2 = saved


# The train and val splits are read once for a whole search when their rows take at most
# this share of the cluster's object store (`read_once`).
READ_ONCE_SHARE = 0.25
SPLITS_READ = ("train", "val")


def split_bytes(data_dir: str, manifest: Mapping[str, Any] | None = None) -> int:
    """About how many bytes the train and val splits of a prepared dataset take in Ray's
    object store: each row its longest allowed sequence, a label and an offset."""
    from raydream.data.prepare import load_manifest

    manifest = manifest if manifest is not None else load_manifest(data_dir)
    per_row = int(manifest["options"]["max_length"]) + 16
    return per_row * sum(int(manifest["rows"][split]) for split in SPLITS_READ)


def split_in_store(data_dir: str, split: str, manifest: Mapping[str, Any] | None = None) -> "ray.data.Dataset":
    """One split of a prepared dataset read by this process, a pyarrow table per shard, and
    put into Ray's object store as a Dataset of those blocks (`ray.data.from_arrow`)."""
    import pyarrow.parquet as pq

    from raydream.core import storage
    from raydream.data.prepare import split_files

    fs, files = storage.arrow_paths(split_files(data_dir, split, manifest))
    return ray.data.from_arrow([pq.read_table(file, filesystem=fs) for file in files])


def read_once(setup: TrialSetup, object_store_bytes: float, timeout_s: float) -> TrialSetup:
    """`setup` with its train and val splits read into Ray's object store once, for every
    trial of the search, when they take at most READ_ONCE_SHARE of `object_store_bytes`;
    else `setup` as it is, and each trial reads them itself (`read_shards`).

    The search's driver, which runs on the data node when the data is on one machine's disk
    (`setup.data_node`), reads each shard with pyarrow and hands the tables to Ray Data as
    its blocks, one per shard (`split_in_store`). Read once, a split costs a trial no
    read tasks and no Parquet sampling (each `read_parquet` samples its files with remote
    tasks: about 1.8 s a trial for the train and val splits of the embedded sample on 2
    cores), and its first epoch runs at the rate of the later ones; no Ray Data read runs
    at all, where `read_parquet(...).materialize()` took 1.6-2.3 s with Ray Data's first
    Parquet datasource and 5.3-8.1 s with Ray 2.60's default one (docs/benchmarks.md). The
    blocks belong to the search's driver and live as long as the search.

    Raises:
        TimeoutError: the reads took over `timeout_s` seconds.
    """
    from raydream.core.background import InBackground
    from raydream.train.trial import free_resources

    if split_bytes(setup.data_dir, setup.manifest) > READ_ONCE_SHARE * object_store_bytes:
        return setup

    def read() -> dict[str, Any]:
        return {split: split_in_store(setup.data_dir, split, setup.manifest) for split in SPLITS_READ}

    try:
        datasets = InBackground(read).result(timeout_s)
    except TimeoutError:
        raise TimeoutError(f"reading the train and val splits of {setup.data_dir} into Ray's object store took "
                           f"over {timeout_s:g} s; the cluster had {free_resources()} free") from None
    return replace(setup, datasets=datasets)


def trainer_arguments(
    setup: TrialSetup, tcfg: TrainConfig, storage_path: str, callbacks: list, gpus_per_worker: float,
    run_name: str = "train", local: bool = False
) -> dict:
    """What every Ray Train trainer of a trial is given: workers, the train and val datasets
    (train split between workers, val read whole and in order by each), and a run config
    (storage_path/run_name). Each worker holds `cpus_per_worker` CPUs for its own threads plus
    DATA_CPUS_PER_WORKER for the reads of its data; in local mode (`local`, see
    `runs_locally`) the trial holds them and no worker is started. The run keeps only its
    latest checkpoint: each one is handed to Tune, which keeps the trial's best (see
    `raydream.train.trial`)."""
    if setup.datasets is not None:
        # Read once: the workers cut the splits to train_rows / val_rows (`first_rows`).
        train, val = (setup.datasets[split] for split in SPLITS_READ)
    else:
        reads = setup.num_workers * DATA_CPUS_PER_WORKER
        train, val = (read_shards(setup.data_dir, split, reads, setup.data_node, setup.manifest)
                      for split in SPLITS_READ)
        if tcfg.train_rows:  # pushed into the read
            train = train.limit(tcfg.train_rows)
        if tcfg.val_rows:
            val = val.limit(tcfg.val_rows)
    resources = {"CPU": setup.cpus_per_worker + DATA_CPUS_PER_WORKER,
                 **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    val_options = ray.train.DataConfig.default_ingest_options()
    val_options.preserve_order = True  # every worker must see validation rows in one order
    if local:  # the trial's process is the worker, and holds its resources
        scaling = ray.train.ScalingConfig(num_workers=0)
    else:
        scaling = ray.train.ScalingConfig(num_workers=setup.num_workers, use_gpu=bool(gpus_per_worker),
                                          resources_per_worker=resources)
    return {
        "scaling_config": scaling,
        "datasets": {"train": train, "val": val},
        # One worker reads the whole split anyway; unsplit, it reads it itself instead of
        # through a split coordinator actor: a bare one-worker Train run of 2 short epochs
        # took 11.5-12.8 s instead of 14.3-14.6 s on 2 cores.
        "dataset_config": ray.train.DataConfig(datasets_to_split=["train"] if setup.num_workers > 1 else [],
                                               execution_options={"val": val_options}),
        "run_config": ray.train.RunConfig(
            name=run_name,
            storage_path=storage_path,
            callbacks=callbacks,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            # A worker group that cannot be placed within RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S
            # (raydream sets it to the stall timeout) ends the run, and Tune retries the trial:
            # Train's own endless rescheduling never yields to an abort (raydream.train.trial).
            failure_config=ray.train.FailureConfig(controller_failure_limit=0),
        ),
    }


def build_trainer(
    trial: TrialConfig, setup: TrialSetup, storage_path: str, callbacks: list, run_name: str = "train",
    resume: "ray.train.Checkpoint | None" = None,
) -> "ray.train.torch.TorchTrainer":
    """A TorchTrainer for one trial, reading the prepared dataset's train and val shards;
    `resume`: the checkpoint a restarted trial goes on from.

    A network's untrained output is the mean of the rows it trains on (`starting_output`),
    unless the space sets `model_config.initial_prediction`. The model's config is typed here,
    once, and the workers get the typed configs.
    """
    tcfg = trial.train
    labels = training_labels(setup, tcfg)
    steps_per_epoch = math.ceil(len(labels) / setup.num_workers / tcfg.batch_size)
    weights = density_weights(labels, tcfg)
    backend = {"torch_config": ray.train.torch.TorchConfig(backend=setup.torch_backend)} if setup.torch_backend else {}
    mcfg = build_model_config(trial.model, {**starting_output(trial.model, labels), **trial.model_config}, tcfg)
    loop_config = {"model": trial.model, "model_config": mcfg, "train": tcfg, "resume_checkpoint": resume,
                   "torch_threads": setup.cpus_per_worker, "steps_per_epoch": steps_per_epoch, "weights": weights}
    local = runs_locally(setup, trial.model)
    if local:  # no controller runs the callbacks: the loop hands its reports over itself
        loop_config["report_to"] = next(cb for cb in callbacks if isinstance(cb, ForwardReports))
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        **backend,
        train_loop_config=loop_config,
        **trainer_arguments(setup, tcfg, storage_path, callbacks, setup.gpus_per_worker, run_name, local),
    )
