"""How cost grows with the library: ingestion time and time per training epoch at 10k, 100k
and 1M rows.

For each size, writes a synthetic DREAM-format file (raydream.data.synthetic), then times:

* ingestion: `raydream.prepare` of the text file (validation, hash splits, zstd Parquet
  shards, manifest);
* an epoch: a one-worker Ray Train run as a trial builds it (`raydream.train.loop`), reading
  the shards through Ray Data, training on the train split (80%), validating on the val
  split (10%) and checkpointing. The epoch time is the loop's own `epoch_s` of the second
  epoch: its training pass (including the Ray Data execution every epoch starts) and
  validation, timed in the worker; the run's start-up and the checkpoint's write are not
  in it.

All sizes train in one Ray instance with one CPU thread for the model. Prints seconds and
rows/s per size, then the cost of each added row from one size to the next: the same
figure at every step means cost grows linearly with the library, past the fixed cost of a
run and of an epoch that the smallest size shows.

The model is the baseline CNN at a small width (`--channels`), so that a 1M-row epoch takes
minutes on a laptop CPU; the network's arithmetic per row does not change with the library,
so the growth is the pipeline's.

    python scripts/bench_scaling.py                          # 10k, 100k, 1M rows
    python scripts/bench_scaling.py --sizes 10000 100000     # any sizes
    python scripts/bench_scaling.py --smoke                  # 2,000 rows, for CI
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from bench_train_loop import start_ray, train_reports

from raydream.data.prepare import PrepareOptions, prepare_dataset
from raydream.data.synthetic import generate_library, write_dream
from raydream.train.config import TrainConfig


def measure(rows: int, work: Path, tcfg: TrainConfig, model_config: dict, seed: int) -> dict:
    """Ingestion seconds, epoch seconds and the loop's training rate for one library size."""
    text = write_dream(generate_library(rows, seed), work / f"{rows}.txt")
    started = time.perf_counter()
    prepare_dataset(text, work / f"data-{rows}", PrepareOptions())
    ingest = time.perf_counter() - started
    reports = train_reports(work / f"data-{rows}", tcfg, work / f"runs-{rows}", "baseline_cnn", model_config)
    return {"rows": rows, "ingest_s": ingest,
            "epoch_s": reports[1]["epoch_s"],
            "train_samples_per_s": reports[1]["train_samples_per_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="library sizes, rows")
    p.add_argument("--channels", type=int, default=32, help="baseline CNN filters per conv layer (default 32)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2,000 rows only: the plumbing, for CI")
    args = p.parse_args()
    sizes = [2_000] if args.smoke else sorted(args.sizes)
    tcfg = TrainConfig(batch_size=args.batch_size, max_epochs=2, seed=args.seed)
    model_config = {"conv1_channels": args.channels, "conv2_channels": args.channels, "hidden": args.channels}

    import ray

    with tempfile.TemporaryDirectory() as tmp:
        start_ray(runs=len(sizes))
        try:
            results = [measure(rows, Path(tmp), tcfg, model_config, args.seed) for rows in sizes]
        finally:
            ray.shutdown()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one Train worker "
          f"(1 CPU), Ray Data on the other")
    print(f"baseline_cnn, {args.channels} channels, batch {args.batch_size}; epoch = train (80%) + validate (10%), "
          f"the second epoch of each run")
    print(f"{'rows':>10}{'ingest s':>10}{'rows/s':>11}{'epoch s':>10}{'train rows/s':>14}")
    for r in results:
        print(f"{r['rows']:>10,}{r['ingest_s']:>10.2f}{r['rows'] / r['ingest_s']:>11,.0f}{r['epoch_s']:>10.1f}"
              f"{r['train_samples_per_s']:>14,.0f}")
    # Cost of the rows added from one size to the next: constant when cost grows linearly
    # (beyond a fixed cost per run or per epoch, which the smallest size shows).
    for small, large in zip(results, results[1:]):
        added = large["rows"] - small["rows"]
        print(f"from {small['rows']:,} to {large['rows']:,} rows: ingestion "
              f"{1e6 * (large['ingest_s'] - small['ingest_s']) / added:.2f} us, an epoch "
              f"{1e6 * (large['epoch_s'] - small['epoch_s']) / added:.1f} us per added row")


if __name__ == "__main__":
    main()
