"""Training-loop overhead: raydream's Ray Train + Ray Data loop against a plain PyTorch loop.

Prepares a synthetic DREAM-like library, then trains the same ResNet (the resnet space's
defaults), same batch size, same optimiser recipe and loss, one CPU thread each:

* plain: the training split one-hot encoded once into in-memory tensors, shuffled each
  epoch, stepped through in a Python loop;
* raydream: a one-worker Ray Train `TorchTrainer` built by `raydream.train.loop.build_trainer`
  (as a trial builds it), reading the shards through Ray Data, encoding each batch as it
  comes, validating and checkpointing after every epoch. Its rate is the loop's own
  `train_samples_per_s` metric: rows trained over the time of the training pass.

Reverse-complement augmentation is off in both, so both do the same arithmetic. Prints
samples/s per epoch and the ratio over the epochs after the first (the first includes Ray
Data's start-up). Goal: raydream at least 0.9x the plain loop.

    python scripts/bench_train_loop.py                    # 20,000 rows, 3 epochs
    python scripts/bench_train_loop.py --smoke            # for CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from raydream.data.prepare import PrepareOptions, prepare_synthetic, read_split  # noqa: E402
from raydream.models import create_model  # noqa: E402
from raydream.train.config import TrainConfig, TrialConfig, build_model_config  # noqa: E402
from raydream.train.losses import compute_loss  # noqa: E402
from raydream.train.optim import make_recipe  # noqa: E402
from raydream.train.steps import encode_batch  # noqa: E402

MODEL = "resnet"


def plain_loop(data: Path, tcfg: TrainConfig) -> list[float]:
    """Samples/s per epoch of a plain PyTorch loop over pre-encoded in-memory tensors."""
    torch.set_num_threads(1)
    torch.manual_seed(tcfg.seed)
    table = read_split(data, "train")
    x, y = encode_batch(table.to_pydict(), tcfg, torch.device("cpu"))
    model = create_model(MODEL, build_model_config(MODEL, {}, tcfg))
    recipe = make_recipe(model, tcfg, steps_per_epoch=-(-len(y) // tcfg.batch_size))
    generator = torch.Generator().manual_seed(tcfg.seed)
    rates = []
    for epoch in range(1, tcfg.max_epochs + 1):
        recipe.start_epoch(epoch)
        model.train()
        order = torch.randperm(len(y), generator=generator)
        started, rows = time.perf_counter(), 0
        for batch in order.split(tcfg.batch_size):
            if len(batch) < 2:
                continue
            output = model(x[batch])
            recipe.step(compute_loss(output.float(), y[batch], tcfg.loss))
            rows += len(batch)
        rates.append(rows / (time.perf_counter() - started))
        recipe.end_epoch(0.0)
    return rates


def train_reports(data: Path, tcfg: TrainConfig, storage: Path, model: str = MODEL,
                  model_config: dict | None = None, cpus_per_worker: int = 1,
                  gpus_per_worker: float = 0.0) -> list[dict]:
    """The per-epoch reports (metrics) of a one-worker Train run as raydream builds it, in a
    running Ray instance."""
    from ray.train.v2.api.callback import UserCallback

    from raydream.train.loop import TrialSetup, build_trainer

    log = storage / "reports.jsonl"

    class RecordReports(UserCallback):  # runs in the Train controller, on this machine
        def after_report(self, run_context, metrics, checkpoint) -> None:
            with open(log, "a") as fh:
                fh.write(json.dumps(metrics[0]) + "\n")

    storage.mkdir(parents=True)
    setup = TrialSetup(str(data), str(storage), num_workers=1, cpus_per_worker=cpus_per_worker,
                       gpus_per_worker=gpus_per_worker)
    build_trainer(TrialConfig(model, model_config or {}, tcfg), setup, str(storage), callbacks=[RecordReports()]).fit()
    return sorted((json.loads(line) for line in log.read_text().splitlines()), key=lambda r: r["epoch"])


def start_ray(runs: int = 1) -> None:
    """A local Ray instance for `runs` Train runs one after another: 2 CPUs (a Train worker
    and Ray Data), quiet.

    Several runs need the dashboard, as raydream.tune starts Ray with it: without it a
    finished Train run's resources are not released and the next run waits forever.
    """
    import ray
    import ray.data

    ray.init(address="local", num_cpus=2, include_dashboard=runs > 1, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def raydream_loop(data: Path, tcfg: TrainConfig, storage: Path) -> list[float]:
    """`train_samples_per_s` per epoch of a one-worker Train run as raydream builds it."""
    import ray

    start_ray()
    try:
        reports = train_reports(data, tcfg, storage)
    finally:
        ray.shutdown()
    return [r["train_samples_per_s"] for r in reports]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=25_000, help="synthetic library size (default 25,000; 80%% train)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--smoke", action="store_true", help="1,000 rows, 2 epochs, for CI")
    args = p.parse_args()
    rows, epochs = (1_000, 2) if args.smoke else (args.rows, args.epochs)
    tcfg = TrainConfig(batch_size=args.batch_size, max_epochs=epochs, rc_augment=False, seed=0)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare_synthetic(rows, data, options=PrepareOptions())
        train_rows = read_split(data, "train", columns=("expression",)).num_rows
        plain = plain_loop(data, tcfg)
        ours = raydream_loop(data, tcfg, Path(tmp) / "runs")

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch "
          f"{torch.__version__}, 1 thread each")
    print(f"{MODEL} (space defaults), batch {tcfg.batch_size}, {train_rows:,} training rows, {epochs} epochs")
    print(f"{'epoch':<8}{'plain samples/s':>18}{'raydream samples/s':>21}{'ratio':>8}")
    for epoch, (a, b) in enumerate(zip(plain, ours), start=1):
        print(f"{epoch:<8}{a:>18,.0f}{b:>21,.0f}{b / a:>8.2f}")
    later = slice(1, None) if epochs > 1 else slice(None)
    ratio = float(np.mean(ours[later]) / np.mean(plain[later]))
    print(f"raydream's loop runs at {ratio:.2f}x the plain loop's samples/s "
          f"(epochs {'2+' if epochs > 1 else '1'}; goal: at least 0.9x)")


if __name__ == "__main__":
    main()
