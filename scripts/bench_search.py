"""How well ASHA spends compute: a raydream search with ASHA against the same configurations
each run to the full epoch budget.

Prepares a synthetic library with a known noise ceiling (the R^2 of the expected value
given the sequence against the measured values: no model can do better on average), then
runs `python -m raydream.tune` twice with the same space, seed and so the same sampled
configurations:

* ASHA: grace period 1, reduction factor 3 (rungs at epochs 1, 3, 9, ...), as raydream runs
  it: one trial at a time on 2 cores, so a trial reaching a rung is compared only with the
  trials that reached it before;
* full budget: grace period = max epochs, so ASHA can stop no trial.

Prints each search's best validation R^2, epochs trained (all trials together) and wall
time, the ratios (goal: ASHA reaches at least 99% of the full budget's best R^2 with at most
35% of its epochs), and the best R^2 as a fraction of the noise ceiling. It also checks
that training is deterministic end to end: each configuration, trained in two separate
searches (two Ray instances) with the same seed, reports the same train loss and val R^2 at
every epoch both ran; it exits non-zero when they differ.

    python scripts/bench_search.py                 # 16 configurations, up to 16 epochs each
    python scripts/bench_search.py --smoke         # 1 configuration, 2 epochs, both searches at once:
                                                   # the plumbing, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from raydream.data.prepare import PrepareOptions, prepare_synthetic

# The baseline CNN, small enough for a CPU, with the knobs that decide whether a
# configuration learns: width, learning rate, batch size, weight decay.
SPACE = """
model: baseline_cnn
model_config:
  conv1_channels: {choice: [16, 32, 64]}
  conv2_channels: {choice: [16, 32]}
  hidden: 32
  dropout: {uniform: [0.0, 0.3]}
train:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  weight_decay: {loguniform: [1.0e-6, 1.0e-3]}
  batch_size: {choice: [64, 128, 256]}
  rc_augment: true
"""

def start_search(label: str, work: Path, data: Path, space: Path, samples: int, epochs: int, grace: int,
                 factor: int, seed: int) -> tuple[subprocess.Popen, float]:
    """Start one search (`python -m raydream.tune`, output to work/LABEL.log)."""
    command = [sys.executable, "-m", "raydream.tune", "--space", str(space), "--data", str(data),
               "--num-samples", str(samples), "--max-epochs", str(epochs), "--grace-period", str(grace),
               "--reduction-factor", str(factor), "--seed", str(seed), "--storage-path", str(work), "--name", label]
    with (work / f"{label}.log").open("w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True), time.perf_counter()


def finish_search(label: str, work: Path, started: tuple[subprocess.Popen, float]) -> dict:
    """Wait for a search; return its best val R^2, epochs trained and wall time."""
    proc, start = started
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{label} search failed:\n{(work / f'{label}.log').read_text()[-4000:]}")
    table = pd.read_csv(work / label / "ranked_trials.csv")
    return {"best_r2": float(table["best_val_r2"].max()), "epochs": int(table["epochs"].sum()),
            "trials": len(table), "wall_s": wall, "curves": learning_curves(work / label)}


def learning_curves(experiment: Path) -> dict[str, list[tuple[float, float]]]:
    """Each trial's (train loss, val R^2) per epoch, keyed by its resolved configuration."""
    curves = {}
    for params in experiment.glob("*/params.json"):
        progress = pd.read_csv(params.parent / "progress.csv")
        curves[json.dumps(json.loads(params.read_text()), sort_keys=True)] = list(
            zip(progress["train_loss"], progress["val_r2"]))
    return curves


def largest_difference(asha: dict, full: dict) -> float:
    """The largest |difference| between an ASHA trial's metrics and those of the same
    configuration's full-budget trial, over the epochs the ASHA trial ran (0.0 when the
    training is deterministic: same configuration, same seed, on CPU)."""
    worst = 0.0
    for config, curve in asha.items():
        for ours, theirs in zip(curve, full[config][:len(curve)]):
            worst = max(worst, *(abs(a - b) for a, b in zip(ours, theirs)))
    return worst



def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000, help="synthetic library size (default 10,000)")
    p.add_argument("--num-samples", type=int, default=16)
    p.add_argument("--reduction-factor", type=int, default=3, help="ASHA keeps 1/N of the trials at each rung")
    p.add_argument("--max-epochs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true",
                   help="2,000 rows, 1 configuration, 2 epochs, for CI (checks the plumbing, not ASHA)")
    args = p.parse_args()
    rows, samples, epochs = (2_000, 1, 2) if args.smoke else (args.rows, args.num_samples, args.max_epochs)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, space = work / "data", work / "space.yaml"
        manifest = prepare_synthetic(rows, data, seed=args.seed, options=PrepareOptions())
        space.write_text(SPACE)
        settings = {"asha": 1, "full": epochs}  # grace period: 1, or the whole budget (ASHA stops nothing)
        if args.smoke:  # side by side, in two Ray instances: the plumbing, not the timing
            started = {label: start_search(label, work, data, space, samples, epochs, grace, args.reduction_factor,
                                           args.seed) for label, grace in settings.items()}
            asha, full = (finish_search(label, work, started[label]) for label in settings)
        else:  # one after the other, each with the machine to itself
            asha, full = (finish_search(label, work, start_search(label, work, data, space, samples, epochs, grace,
                                                                  args.reduction_factor, args.seed))
                          for label, grace in settings.items())
    ceiling = manifest["synthetic"]["noise_ceiling_r2"]
    # One trial per configuration, and the same configurations in both searches.
    if not (0 < len(asha["curves"]) == asha["trials"] == full["trials"] == len(full["curves"])
            and asha["curves"].keys() == full["curves"].keys()):
        raise SystemExit("the two searches sampled different configurations")
    drift = largest_difference(asha["curves"], full["curves"])

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"synthetic library: {rows:,} rows, noise ceiling R^2 {ceiling:.4f}; {samples} configurations of "
          f"baseline_cnn, up to {epochs} epochs; same seed, same configurations in both searches")
    print(f"{'search':<28}{'best val R^2':>14}{'epochs':>8}{'wall s':>9}")
    for name, result in ((f"ASHA (grace 1, factor {args.reduction_factor})", asha), ("full budget", full)):
        print(f"{name:<28}{result['best_r2']:>14.4f}{result['epochs']:>8}{result['wall_s']:>9.0f}")
    r2_ratio = asha["best_r2"] / full["best_r2"] if full["best_r2"] > 0 else float("nan")
    print(f"ASHA reaches {r2_ratio:.1%} of the full budget's best R^2 with "
          f"{asha['epochs'] / full['epochs']:.1%} of its epochs and {asha['wall_s'] / full['wall_s']:.1%} of its "
          f"wall time (goal: >= 99% with <= 35%)")
    print(f"best R^2 / noise ceiling: ASHA {asha['best_r2'] / ceiling:.1%}, full budget "
          f"{full['best_r2'] / ceiling:.1%}")
    print(f"determinism: every ASHA trial's train loss and val R^2 equal its configuration's full-budget "
          f"trial's over the epochs both ran: {'yes' if drift == 0 else 'NO'} (largest difference {drift:.3g})")
    if drift:
        raise SystemExit("the same configuration and seed trained differently in the two searches")


if __name__ == "__main__":
    main()
