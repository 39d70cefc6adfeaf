"""Where a search's time goes: in the trials' epochs, or in starting and feeding them.

Runs, one after the other on this machine:

* the README's quick start (`python -m raydream.tune --space resnet`) and its `--smoke`
  search, as a user runs them (each trial a Ray Train run, in local mode for these
  one-worker trials, reading Ray Datasets);
* the same configurations, each for the epochs it ran there, trained by a plain Ray Tune
  function trainable that runs the training loop in its own process over the splits held
  in memory as numpy arrays (Ray's simplest path: no Train run, no Ray Data, no checkpoint),
  one trial at a time with the same CPUs a raydream trial reserves;
* optionally the same two searches with another checkout of raydream (`--compare DIR`, e.g.
  an older commit), for a side-by-side with the code before a change.

For each it prints the command's wall time, the trials' span (first trial's start to last
trial's last report, from Tune's results), the seconds spent in epochs (the loop's own
`epoch_s`: training pass and validation), their share of the span (times the most trials that
ran at once), the per-trial fixed cost (a trial's time outside its epochs: the Train run's
start, model set-up, data, checkpoints) and the data cost of the first and of the later epochs (the
loop's `data_s`: time its training pass waited for batches), and the phases of each search's
wall time, from when its console showed each phase's last line: starting (imports, checks,
Ray), reading the data once, reaching the first trial's start (the Tuner, the trial's
process), the trials, and what follows them (table, test scores, Ray's shutdown).

    python scripts/bench_overhead.py                   # quick start and smoke (~15 min on 2 cores)
    python scripts/bench_overhead.py --only smoke      # smoke only (~3 min)
    python scripts/bench_overhead.py --compare /tmp/old-checkout
    python scripts/bench_overhead.py --smoke           # one 1-epoch trial of each kind: the plumbing, for CI
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEARCHES = {"quick start": [], "smoke": ["--smoke"]}
SMOKE = {"smoke": ["--smoke", "--num-samples", "1", "--max-epochs", "1"]}


# Lines of a search's console that end each phase of its wall time: (phase, pattern, whether
# the phase ends at the pattern's last line rather than its first).
PHASES = [
    ("start: imports, checks, Ray (s)", re.compile(r"^raydream: (experiment|resuming) "), False),
    ("data read once (s)", re.compile(r"read once into Ray's object store"), False),
    ("to the first trial's start (s)", re.compile(r"^raydream: trial \w+ started"), False),
    ("trials, to the last one's end (s)", re.compile(r"^raydream: trial \w+ (completed|stopped|failed)"), True),
]


def phases(marks: dict[str, float], wall: float) -> dict[str, float]:
    """Seconds of each phase of a search (PHASES), from when the console showed the line that
    ends it (`marks`, seconds since the command started), and what followed the trials: the
    table, the test scores and Ray's shutdown. NaN for a phase whose line never came (another
    version's console, or the plain trainable)."""
    out, previous = {}, 0.0
    for name, _, _ in PHASES:
        if name in marks:
            out[name], previous = marks[name] - previous, marks[name]
        else:
            out[name] = math.nan
    last = PHASES[-1][0]
    out["table, test scores, shutdown (s)"] = wall - marks[last] if last in marks else math.nan
    return out


def run_search(label: str, extra: list[str], work: Path, checkout: Path | None) -> dict[str, Any]:
    """Run `python -m raydream.tune --space resnet EXTRA` (from `checkout`, or this one) and
    return its wall time, experiment directory and phases (`phases`)."""
    storage = work / f"{label.replace(' ', '_')}-{'other' if checkout else 'this'}"
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = f"{checkout}{os.pathsep}{env.get('PYTHONPATH', '')}"
    log = storage.with_suffix(".log")
    marks: dict[str, float] = {}
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "raydream.tune", "--space", "resnet", *extra,
                                 "--storage-path", str(storage), "--name", "search"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, cwd=work)
        for line in proc.stdout:
            seen = time.perf_counter() - started
            out.write(line)
            for name, pattern, last in PHASES:
                if pattern.search(line) and (last or name not in marks):
                    marks[name] = seen
        code = proc.wait()
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"bench_overhead: the {label} search exited with {code}; see {log}")
    return {"wall": wall, "experiment": storage / "search", "phases": phases(marks, wall)}


def trial_results(experiment: Path) -> list[list[dict]]:
    """Each trial's reports (Tune's result.json lines), in trial order."""
    trials = []
    for directory in sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "result.json").is_file()):
        reports = [json.loads(line) for line in (directory / "result.json").read_text().splitlines() if line.strip()]
        if reports:
            trials.append(reports)
    return trials


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most trials that ran at once. Tune's timestamps are whole seconds, so a span's
    start (timestamp - time_total_s) may be up to 1 s early: each start is moved 1 s later,
    so that trials run one after the other never count as overlapping."""
    events = sorted([(s + 1.0, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return max(best, 1)


def breakdown(trials: list[list[dict]], wall: float, phased: dict[str, float] | None = None) -> dict[str, float]:
    """The figures printed for one run (see the module docstring), with its phases
    (`phases`) when its console was read."""
    spans = [(r[-1]["timestamp"] - r[-1]["time_total_s"], r[-1]["timestamp"]) for r in trials]
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    epochs = sum(x["epoch_s"] for r in trials for x in r)
    fixed = [r[-1]["time_total_s"] - sum(x["epoch_s"] for x in r) for r in trials]

    def mean_data(first: bool) -> float:
        values = [x.get("data_s", math.nan) for r in trials for x in (r[:1] if first else r[1:])]
        return float(np.mean(values)) if values else math.nan

    return {"command wall (s)": wall, "trials": len(trials), "epochs": sum(len(r) for r in trials),
            "trials' span (s)": span, "in epochs (s)": epochs,
            "epochs' share of span": epochs / (span * most_at_once(spans)),
            "fixed cost per trial (s)": float(np.mean(fixed)),
            "data, first epoch (s)": mean_data(True), "data, later epochs (s)": mean_data(False),
            **(phased or phases({}, wall))}


def plain_trainable(config: dict, runs=None, splits=None, space=None) -> None:
    """One configuration trained in this process over in-memory splits, reported to Tune each
    epoch as raydream's loop reports it (no checkpoint)."""
    import torch
    from ray import tune

    from raydream.core.typed import from_dict
    from raydream.core.metrics import regression_metrics
    from raydream.core.seeding import seed_everything
    from raydream.train.config import TrainConfig, build_model_config
    from raydream.train.loop import density_weights, starting_output
    from raydream.train.steps import CODES, encode_batch, input_codes, model_and_recipe, predict, train_epoch

    run = runs[config["run"]]
    resolved = space.resolve(run["config"])
    name, tcfg = resolved["model"], from_dict(TrainConfig, resolved["train"], "train")
    torch.set_num_threads(1)
    generator = seed_everything(tcfg.seed)
    train_seqs, train_y = splits["train"]
    if tcfg.train_rows:
        train_seqs, train_y = train_seqs[:tcfg.train_rows], train_y[:tcfg.train_rows]
    model_values = {**starting_output(name, train_y), **resolved["model_config"]}
    mcfg = build_model_config(name, model_values, tcfg)
    steps = math.ceil(len(train_y) / tcfg.batch_size)
    device = torch.device("cpu")
    model, recipe, _, _ = model_and_recipe(name, mcfg, tcfg, steps, device)
    codes = input_codes({"sequence": train_seqs}, tcfg)
    val = [{CODES: input_codes({"sequence": splits["val"][0]}, tcfg), "expression": splits["val"][1]}]
    weights = density_weights(train_y, tcfg)

    def batches(epoch: int, waited: list[float]):  # timed as raydream's loop times its batches
        order = np.random.default_rng([tcfg.seed, epoch]).permutation(len(train_y))
        for start in range(0, len(order), tcfg.batch_size):
            began = time.perf_counter()
            rows = order[start:start + tcfg.batch_size]
            batch = {CODES: codes[rows], "expression": train_y[rows]}
            waited[0] += time.perf_counter() - began
            yield batch

    def in_order():  # SWA's BatchNorm pass
        for start in range(0, len(train_y), tcfg.batch_size):
            rows = slice(start, start + tcfg.batch_size)
            yield encode_batch({CODES: codes[rows], "expression": train_y[rows]}, tcfg, device)[0]

    for epoch in range(1, run["epochs"] + 1):
        recipe.start_epoch(epoch)
        started, waited = time.perf_counter(), [0.0]
        loss_sum, count = train_epoch(model, recipe, batches(epoch, waited), tcfg, device, generator, weights)
        evaluated = recipe.eval_model(model, in_order)
        preds, labels = predict(evaluated, val, tcfg, device)
        scores = regression_metrics(labels, preds)
        recipe.end_epoch(scores["mse"])
        tune.report({"epoch": epoch, "train_loss": loss_sum / max(count, 1),
                     **{f"val_{k}": v for k, v in scores.items()}, "epoch_s": time.perf_counter() - started,
                     "data_s": waited[0]})


def run_plain(label: str, experiment: Path, work: Path) -> dict[str, Any]:
    """The configurations of a raydream experiment, each for the epochs it ran there, through
    `plain_trainable`; its wall time and experiment directory."""
    import ray
    from ray import tune

    from raydream.data.prepare import read_split
    from raydream.tuning.plan import Search

    search = Search.read(experiment)
    runs = []
    for reports in trial_results(experiment):
        params = json.loads((experiment / _trial_dir(experiment, reports[0]["trial_id"]) / "params.json").read_text())
        runs.append({"config": params, "epochs": len(reports)})
    splits = {}
    for split in ("train", "val"):
        table = read_split(search.data, split)
        splits[split] = (table.column("sequence").to_numpy(zero_copy_only=False),
                         table.column("expression").to_numpy())
    storage = work / f"{label.replace(' ', '_')}-plain"
    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(plain_trainable, runs=runs, splits=splits, space=search.space),
                                {"CPU": 2}),
            param_space={"run": tune.grid_search(list(range(len(runs))))},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=1),
            run_config=tune.RunConfig(name="search", storage_path=str(storage), verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    return {"wall": time.perf_counter() - started, "experiment": storage / "search", "runs": len(runs)}


def _trial_dir(experiment: Path, trial_id: str) -> str:
    return next(p.name for p in experiment.iterdir() if p.is_dir() and trial_id in p.name)


def print_table(columns: dict[str, dict[str, float]]) -> None:
    names = list(columns)
    width = max(14, *(len(n) + 2 for n in names))
    rows = list(next(iter(columns.values())))
    print(f"{'':<28}" + "".join(f"{n:>{width}}" for n in names))
    for row in rows:
        cells = []
        for name in names:
            value = columns[name].get(row, math.nan)
            if row == "epochs' share of span":
                cells.append(f"{value:>{width}.0%}")
            elif isinstance(value, int):
                cells.append(f"{value:>{width}d}")
            else:
                cells.append(f"{value:>{width}.2f}" if math.isfinite(value) else f"{'-':>{width}}")
        print(f"{row:<28}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=tuple(SEARCHES), default=None, help="run one of the two searches")
    parser.add_argument("--compare", type=Path, default=None,
                        help="a checkout of another raydream version whose searches run beside this one's")
    parser.add_argument("--smoke", action="store_true", help="one trial of one epoch each way (the plumbing)")
    args = parser.parse_args()
    print(f"bench_overhead: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="bench_overhead-") as tmp:
        work = Path(tmp)
        for label, extra in (SMOKE if args.smoke else SEARCHES).items():
            if args.only and label != args.only:
                continue
            columns = {}
            ours = run_search(label, extra, work, None)
            columns["raydream"] = breakdown(trial_results(ours["experiment"]), ours["wall"], ours["phases"])
            if args.compare:
                other = run_search(label, extra, work, args.compare.resolve())
                columns[f"{args.compare.name}"] = breakdown(trial_results(other["experiment"]), other["wall"],
                                                            other["phases"])
            plain = run_plain(label, ours["experiment"], work)
            columns["plain Tune"] = breakdown(trial_results(plain["experiment"]), plain["wall"])
            print(f"\n{label} (`python -m raydream.tune --space resnet {' '.join(extra)}`); plain Tune: the same "
                  f"{plain['runs']} configurations and epochs, in-process over in-memory arrays:")
            print_table(columns)
            ratio = columns["raydream"]["trials' span (s)"] / columns["plain Tune"]["trials' span (s)"]
            print(f"raydream's trials' span is {ratio:.2f}x the plain trainable's")
            if args.compare:
                name = args.compare.name
                print(f"command wall: {columns['raydream']['command wall (s)']:.1f} s against "
                      f"{columns[name]['command wall (s)']:.1f} s with {name} "
                      f"({columns['raydream']['command wall (s)'] / columns[name]['command wall (s)']:.2f}x)")


if __name__ == "__main__":
    main()
