"""The GPU path of raydream, checked row by row on a machine with CUDA: a pass/fail table.

Without Ray (PyTorch, NumPy, SciPy, scikit-learn, pyarrow, pandas, PyYAML), on the embedded
sample:

* every network family trains one epoch on the GPU and predicts finite values, its weights
  and optimiser state on the GPU;
* LegNet trains in bf16 and in fp16 (loss scaling);
* `cosine_swa` averages its weights on the GPU and validates the average;
* a checkpoint saved after an epoch loads onto the GPU (weights, optimiser state and step
  counters there) and training goes on from it, as a retried or resumed worker does;
* LegNet at batch 1024 in bf16: raydream's per-batch code (`raydream.train.steps`, fed
  strings as Ray Data hands them over) against a plain PyTorch loop over the same rows
  already one-hot encoded on the GPU, same model, optimiser, loss and batch size.

With Ray (skipped with --torch-only), through `python -m raydream.tune` as a user runs it:

* a search whose trial's training process is killed (SIGKILL) mid-epoch (a one-worker trial
  trains in its own process, Ray Train's local mode, holding the GPU): Tune retries the
  trial from its checkpoint, on the GPU;
* the same search stopped with Ctrl-C during its second trial, then `--resume`d to the end;
* two Train workers in one trial sharing the one GPU (`--torch-backend gloo`: NCCL refuses
  two ranks on one device);
* the Ray Train loop's own samples/s for LegNet at batch 1024 in bf16 (Ray Data reads,
  per-batch encoding, validation and checkpoints each epoch) against the plain loop.

Exits 1 if any row fails, 0 otherwise; prints "no CUDA: skipped" and exits 0 where PyTorch
sees no GPU.

    python scripts/gpu_check.py                 # every row (a few minutes on one H100-class GPU)
    python scripts/gpu_check.py --torch-only    # the rows without Ray (about a minute)
    python scripts/gpu_check.py --smoke         # fewer batches and rows
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

# Runs from a checkout whether or not raydream is installed (a GPU machine may have only
# PyTorch and what is carried to it); the searches and Ray's workers it starts inherit it.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

FAMILIES = {"baseline_cnn": "cnn", "cls_cnn": "cls_cnn", "resnet": "resnet", "legnet": "legnet"}
THROUGHPUT_BATCH = 1024
THROUGHPUT_GOAL = 0.9  # raydream's samples/s at least this fraction of the plain loop's


@dataclass
class Row:
    name: str
    ok: bool
    detail: str
    seconds: float


# ----------------------------------------------------------------------------------------------
# Without Ray


def sample_rows(split: str, limit: int) -> dict:
    """`limit` rows of a split of the embedded sample: {"sequence": str array, "expression": float array}."""
    from raydream.data.prepare import read_split, resolve_dataset

    table = read_split(resolve_dataset(None), split, limit=limit)
    return {"sequence": table.column("sequence").to_numpy(zero_copy_only=False),
            "expression": table.column("expression").to_numpy()}


def batches_of(rows: dict, size: int) -> list[dict]:
    n = len(rows["expression"])
    return [{k: v[i:i + size] for k, v in rows.items()} for i in range(0, n, size)]


def space_config(family: str, **train_overrides):
    """(model config, TrainConfig) of a shipped space with each searched key at its first
    value, and `train_overrides` on top."""
    from raydream.tuning.space import Distribution, load_space
    from raydream.train.config import TrainConfig, build_model_config

    space = load_space(FAMILIES[family])
    first = {section: {k: v.candidates()[0] if isinstance(v, Distribution) else v
                       for k, v in getattr(space, section).items()}
             for section in ("model_config", "train")}
    resolved = space.resolve(first)
    tcfg = TrainConfig(**{**resolved["train"], **train_overrides})
    return build_model_config(space.model, resolved["model_config"], tcfg), tcfg, space.model


def on_device(model: torch.nn.Module, recipe, device: torch.device) -> list[str]:
    """Names of the model's and the recipe's tensors that are not on `device`."""
    wrong = [f"model.{n}" for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device != device]
    for i, state in enumerate(recipe.optimizer.state.values()):
        wrong += [f"optimizer.state[{i}].{k}" for k, v in state.items()
                  if torch.is_tensor(v) and v.device != device and v.dim() > 0]
    averaged = getattr(recipe, "averaged", None)
    if averaged is not None:
        wrong += [f"averaged.{n}" for n, t in [*averaged.named_parameters(), *averaged.named_buffers()]
                  if t.device != device]
    return wrong


def train_and_score(family: str, device: torch.device, epochs: int = 1, checkpoint_dir: str | None = None,
                    save_to: str | None = None, rows: int = 2048, **train_overrides) -> tuple[float, float, list[str]]:
    """Train `epochs` epochs of a family on the sample's first `rows` training rows, on `device`.

    Returns (mean training loss of the last epoch, validation R^2, tensors off the device).
    """
    import numpy as np

    from raydream.train.checkpoint import save_checkpoint
    from raydream.core.metrics import regression_metrics
    from raydream.core.seeding import seed_everything
    from raydream.train.steps import encode_batch, model_and_recipe, predict, train_epoch

    mcfg, tcfg, name = space_config(family, **train_overrides)
    generator = seed_everything(tcfg.seed)
    train = batches_of(sample_rows("train", rows), tcfg.batch_size)
    val = batches_of(sample_rows("val", 512), 256)
    model, recipe, start, _ = model_and_recipe(name, mcfg, tcfg, len(train), device, checkpoint_dir)
    loss, r2 = math.nan, math.nan
    for epoch in range(start, start + epochs):
        recipe.start_epoch(epoch)
        loss_sum, count = train_epoch(model, recipe, train, tcfg, device, generator)
        evaluated = recipe.eval_model(model, lambda: (encode_batch(b, tcfg, device)[0] for b in train))
        preds, labels = predict(evaluated, val, tcfg, device)
        if not np.isfinite(preds).all():
            raise AssertionError(f"epoch {epoch}: non-finite predictions")
        r2 = regression_metrics(labels, preds)["r2"]
        recipe.end_epoch(float(np.mean((preds - labels) ** 2)))
        loss = loss_sum / max(count, 1)
        if save_to:
            save_checkpoint(save_to, evaluated, name, mcfg, tcfg, epoch, {"val_r2": r2, "best_val_r2": r2},
                            optimizer_state=recipe.state_dict(), train_model=model if evaluated is not model else None)
    if not math.isfinite(loss):
        raise AssertionError(f"training loss {loss}")
    return loss, r2, on_device(model, recipe, device)


def family_row(family: str, device: torch.device) -> str:
    loss, r2, wrong = train_and_score(family, device)
    if wrong:
        raise AssertionError(f"off the GPU: {', '.join(wrong[:3])}")
    return f"loss {loss:.3f}, val R^2 {r2:.3f}"


def precision_row(precision: str, device: torch.device) -> str:
    loss, r2, wrong = train_and_score("legnet", device, precision=precision)
    if wrong:
        raise AssertionError(f"off the GPU: {', '.join(wrong[:3])}")
    return f"legnet loss {loss:.3f}, val R^2 {r2:.3f}"


def swa_row(device: torch.device) -> str:
    loss, r2, wrong = train_and_score("resnet", device, epochs=3, optimizer="cosine_swa", swa_start=2)
    if wrong:
        raise AssertionError(f"off the GPU: {', '.join(wrong[:3])}")
    return f"resnet, averaged from epoch 2: val R^2 {r2:.3f}"


def resume_row(device: torch.device) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        train_and_score("legnet", device, save_to=tmp, precision="bf16")
        loss, r2, wrong = train_and_score("legnet", device, checkpoint_dir=tmp, precision="bf16")
    if wrong:
        raise AssertionError(f"after loading, off the GPU: {', '.join(wrong[:3])}")
    return f"legnet epoch 2 from epoch 1's checkpoint: loss {loss:.3f}, val R^2 {r2:.3f}"


def legnet_throughput_config():
    """LegNet at its defaults (1.1M parameters) with its recipe, bf16, batch 1024."""
    from raydream.train.config import TrainConfig, build_model_config

    tcfg = TrainConfig(loss="soft_kl", input_flags=True, optimizer="adamw_onecycle", precision="bf16",
                       batch_size=THROUGHPUT_BATCH, rc_augment=True, max_epochs=3)
    return build_model_config("legnet", {}, tcfg), tcfg


def synthetic_rows(n: int) -> dict:
    import numpy as np

    from raydream.data.synthetic import generate_library

    library = generate_library(n, seed=0)
    return {"sequence": np.array(library.sequences, dtype=object), "expression": library.measured}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_rate(rows: dict, device: torch.device, steps: int) -> float:
    """Rows/s of a plain PyTorch loop: inputs one-hot encoded on the GPU beforehand, batches
    indexed out of them, the same model, recipe and loss as raydream's."""
    from raydream.models import create_model
    from raydream.train.losses import compute_loss
    from raydream.train.optim import make_recipe
    from raydream.train.steps import autocast, encode_batch

    mcfg, tcfg = legnet_throughput_config()
    x, y = encode_batch(rows, tcfg, device, training=True, generator=torch.Generator().manual_seed(0))
    model = create_model("legnet", mcfg).to(device)
    recipe = make_recipe(model, tcfg, steps)
    model.train()
    order = torch.randperm(len(y), device=device).split(tcfg.batch_size)
    started = 0.0
    for i, idx in enumerate(order[:steps]):
        if i == 5:  # after warm-up
            synchronize(device)
            started = time.perf_counter()
        with autocast(tcfg, device):
            output = model(x[idx])
        recipe.step(compute_loss(output.float(), y[idx], tcfg.loss, tcfg.huber_delta, tcfg.soft_label_sd,
                                 tcfg.soft_label_shift))
    synchronize(device)
    return (min(steps, len(order)) - 5) * tcfg.batch_size / (time.perf_counter() - started)


def steps_rate(rows: dict, device: torch.device, steps: int) -> float:
    """Rows/s of raydream's per-batch code (`train_epoch`) over numpy string batches."""
    from raydream.models import create_model
    from raydream.train.optim import make_recipe
    from raydream.train.steps import train_epoch

    mcfg, tcfg = legnet_throughput_config()
    model = create_model("legnet", mcfg).to(device)
    recipe = make_recipe(model, tcfg, steps)
    batches = batches_of(rows, tcfg.batch_size)[:steps]
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, recipe, batches[:5], tcfg, device, generator)  # warm-up
    synchronize(device)
    started = time.perf_counter()
    _, count = train_epoch(model, recipe, batches[5:], tcfg, device, generator)
    synchronize(device)
    return count / (time.perf_counter() - started)


def throughput_row(device: torch.device, rows: dict, steps: int, goal: float) -> str:
    plain, ours = plain_rate(rows, device, steps), steps_rate(rows, device, steps)
    ratio = ours / plain
    detail = f"raydream steps {ours:,.0f} rows/s, plain {plain:,.0f} rows/s: {ratio:.2f}x"
    if ratio < goal:
        raise AssertionError(f"{detail} (goal {goal}x)")
    return detail


# ----------------------------------------------------------------------------------------------
# With Ray: searches as a user runs them


def tune(*args: str, timeout: float = 300, log: Path | None = None, wait: bool = True):
    command = [sys.executable, "-m", "raydream.tune", *args]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    out = log.open("w")
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def reported_epochs(trial: Path) -> list[int]:
    import pandas as pd

    try:
        return pd.read_csv(trial / "progress.csv")["epoch"].astype(int).tolist()
    except (OSError, ValueError, KeyError):
        return []


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the search ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.2)


# The titles Ray gives the processes that train: a Train worker, or a trial's own process
# (Tune's `with_resources` trainable), which trains in Ray Train's local mode.
TRAINING_PROCESSES = (b"ray::RayTrainWorker", b"ray::ResourceTrainable")


def kill_trainers(session: int) -> int:
    """SIGKILL the processes that train in a process session, found by the title Ray gives an
    actor's process; how many there were."""
    pids = [pid for pid in _process_ids() if _title(pid).startswith(TRAINING_PROCESSES) and _session(pid) == session]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def _process_ids() -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*")]


def _title(pid: int) -> bytes:
    """A process's title: the first field of its command line (b"" once it has gone)."""
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return b""


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


GPU_SPACE = """
model: legnet
model_config: {stem_channels: 32, block_channels: [64, 32]}
train: {loss: soft_kl, input_flags: true, optimizer: adamw_onecycle, lr: {loguniform: [1.0e-3, 5.0e-3]},
        batch_size: 1024}
"""


def gpu_flags(device: torch.device, gpus: str = "1") -> list[str]:
    """The search's GPU flags; on the CPU, to test the script itself, none, and CPUs enough
    for two Train workers whatever the machine has."""
    return ["--gpus-per-worker", gpus] if device.type == "cuda" else ["--num-cpus", "4"]


def fault_and_resume_rows(tmp: Path, data: Path, device: torch.device) -> list[Row]:
    """One search of two trials, 3 epochs each, one at a time on the GPU: the process that
    trains the first trial is killed after its first report (mid-way through epoch 2), and the search
    is stopped with Ctrl-C once the second trial has reported; then it is resumed."""
    space = tmp / "gpu_legnet.yaml"
    space.write_text(GPU_SPACE)
    experiment = tmp / "results" / "cut"
    started = time.perf_counter()
    proc = tune("--space", str(space), "--data", str(data), "--num-samples", "2", "--max-epochs", "3",
                "--grace-period", "3", "--max-concurrent", "1", *gpu_flags(device), "--precision", "bf16",
                "--storage-path", str(tmp / "results"), "--name", "cut", log=tmp / "cut.log", wait=False)
    rows = []
    try:
        def trials() -> list[Path]:
            return sorted(experiment.glob("TrainRunTrial_*"))

        wait_until(lambda: bool(trials()) and bool(reported_epochs(trials()[0])), proc, "first report", 300)
        killed = kill_trainers(proc.pid)
        if not killed:
            raise AssertionError("no process titled ray::ResourceTrainable or ray::RayTrainWorker in the search's "
                                 "session (does this kernel show process titles in /proc/PID/cmdline?)")
        wait_until(lambda: len(trials()) == 2 and bool(reported_epochs(trials()[1])), proc,
                   "report of the second trial", 300)
        first = trials()[0]
        went_on = "goes on from the trial's checkpoint" in (first / "stderr").read_text()
        epochs = reported_epochs(first)
        ok = killed == 1 and went_on and epochs[-1] == 3 and epochs.count(1) == 1
        rows.append(Row("trial's training process killed mid-epoch, retried from its checkpoint", ok,
                        f"killed {killed} process(es); epochs reported {epochs}; second Train run went on from the "
                        f"checkpoint: {went_on}", time.perf_counter() - started))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        stop_group(proc)
    started = time.perf_counter()
    resumed = tune("--resume", str(experiment), timeout=300)
    import pandas as pd

    table = pd.read_csv(experiment / "ranked_trials.csv") if (experiment / "ranked_trials.csv").exists() else None
    ok = (proc.returncode == 130 and resumed.returncode == 0 and table is not None
          and table["status"].tolist() == ["completed", "completed"] and (table["epochs"] == 3).all())
    detail = (f"Ctrl-C exit {proc.returncode}; --resume exit {resumed.returncode}; "
              + (f"trials {table['status'].tolist()}, epochs {table['epochs'].tolist()}" if table is not None
                 else resumed.stderr[-300:]))
    rows.append(Row("--resume of a search stopped with Ctrl-C", ok, detail, time.perf_counter() - started))
    return rows


def two_workers_row(tmp: Path, data: Path, device: torch.device) -> str:
    space = tmp / "gpu_legnet.yaml"
    space.write_text(GPU_SPACE)
    done = tune("--space", str(space), "--data", str(data), "--num-samples", "1", "--max-epochs", "2",
                "--num-workers", "2", *gpu_flags(device, "0.5"), "--torch-backend", "gloo",
                "--storage-path", str(tmp / "results"), "--name", "two", timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {(done.stdout + done.stderr)[-500:]}")
    import pandas as pd

    progress = pd.read_csv(next((tmp / "results" / "two").glob("*/progress.csv")))
    if not (progress["workers"] == 2).all():
        raise AssertionError(f"workers reported: {progress['workers'].tolist()}")
    shape = "2 workers x 0.5 GPU" if device.type == "cuda" else "2 CPU workers"
    return f"{shape}, gloo: val R^2 {progress['val_r2'].iloc[-1]:.3f} after {len(progress)} epochs"


def ray_loop_row(tmp: Path, data: Path, plain: float, device: torch.device, goal: float) -> str:
    """samples/s of a one-worker GPU Train run as raydream builds it, epochs 2 and 3."""
    import ray

    from bench_train_loop import train_reports  # beside this script

    _, tcfg = legnet_throughput_config()
    gpus = 1 if device.type == "cuda" else 0
    ray.init(address="local", num_cpus=4, num_gpus=gpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:  # LegNet at its defaults
        reports = train_reports(data, tcfg, tmp / "runs", model="legnet", cpus_per_worker=2, gpus_per_worker=gpus)
    finally:
        ray.shutdown()
    later = [r["train_samples_per_s"] for r in reports[1:]]
    ours = sum(later) / len(later)
    detail = (f"Ray Train loop {ours:,.0f} rows/s (epochs 2+, {reports[0]['epoch_s']:.1f} s for epoch 1), plain "
              f"{plain:,.0f}: {ours / plain:.2f}x")
    if ours / plain < goal:
        raise AssertionError(f"{detail} (goal {goal}x)")
    return detail


# ----------------------------------------------------------------------------------------------


def timed(name: str, check: Callable[[], str]) -> Row:
    started = time.perf_counter()
    try:
        return Row(name, True, check(), time.perf_counter() - started)
    except Exception as err:  # a failed row is reported, and the next one runs
        detail = f"{type(err).__name__}: {err}"
        if not isinstance(err, AssertionError):
            detail += " | " + traceback.format_exc(limit=-2).strip().replace("\n", " ")[-400:]
        return Row(name, False, detail, time.perf_counter() - started)


def print_table(rows: list[Row]) -> None:
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{'PASS' if r.ok else 'FAIL'}  {r.name:<{width}}  {r.seconds:6.1f} s  {r.detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--torch-only", action="store_true", help="only the rows without Ray")
    p.add_argument("--steps", type=int, default=60, help="timed batches of 1,024 rows in the throughput rows (60)")
    p.add_argument("--smoke", action="store_true", help="fewer batches and rows (10 timed batches, 20,480 rows)")
    p.add_argument("--search-rows", type=int, default=THROUGHPUT_BATCH * 200,
                   help="rows of the synthetic library the Ray rows search (204,800: ~164k training rows)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cpu: run the rows on the CPU, to test this script where there is no GPU (no fp16 row)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.search_rows = 10, THROUGHPUT_BATCH * 20
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA: skipped")
            return 0
        device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
        print(f"GPU: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, CUDA {torch.version.cuda}",
              flush=True)
    else:
        device = torch.device("cpu")
        print(f"CPU (a test of this script, not of the GPU path); torch {torch.__version__}", flush=True)
    rows: list[Row] = []
    for family in FAMILIES:
        rows.append(timed(f"{family}: one epoch on the {device.type.upper()}", lambda f=family: family_row(f, device)))
    for precision in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
        rows.append(timed(f"legnet in {precision}", lambda p=precision: precision_row(p, device)))
    where = device.type.upper()
    rows.append(timed(f"cosine_swa: averaged model on the {where}", lambda: swa_row(device)))
    rows.append(timed(f"checkpoint loaded onto the {where}, training goes on", lambda: resume_row(device)))
    samples = synthetic_rows(THROUGHPUT_BATCH * (args.steps + 5))
    goal = THROUGHPUT_GOAL if device.type == "cuda" else 0.0  # on CPUs the rates only show the script runs
    rows.append(timed(f"legnet batch {THROUGHPUT_BATCH} bf16: raydream steps vs plain loop",
                      lambda: throughput_row(device, samples, args.steps + 5, goal)))
    print_table(rows)
    if not args.torch_only:
        ray_rows = run_ray_rows(device, samples, args.steps + 5, goal, args.search_rows)
        print_table(ray_rows)
        rows += ray_rows
    failed = [r.name for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_ray_rows(device: torch.device, samples: dict, steps: int, goal: float, search_rows: int) -> list[Row]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return [Row("Ray rows", False, "ray is not installed here (see docs/scaling.md); --torch-only skips them", 0.0)]
    from raydream.data.prepare import PrepareOptions, prepare_synthetic

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        prepare_synthetic(search_rows, data, options=PrepareOptions())
        try:
            rows += fault_and_resume_rows(tmp, data, device)
        except Exception as err:  # reported as a row, like the others
            rows.append(Row("training process killed, then --resume", False, f"{type(err).__name__}: {err}", 0.0))
        rows.append(timed("two Train workers on one GPU (gloo)", lambda: two_workers_row(tmp, data, device)))
        plain = plain_rate(samples, device, steps)
        rows.append(timed(f"legnet batch {THROUGHPUT_BATCH} bf16: Ray Train loop vs plain loop",
                          lambda: ray_loop_row(tmp, data, plain, device, goal)))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
