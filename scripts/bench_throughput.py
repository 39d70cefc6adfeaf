"""Training and prediction throughput of each network family on one device (no Ray).

Times `raydream.train.steps` (the code every Ray Train worker runs per batch: one-hot
encoding on the CPU, the copy to the device from pinned memory, forward, loss, backward,
optimiser step) in fp32 and mixed precision, and prints samples/s, the ratio to fp32, and
the epochs per hour that rate gives on the full DREAM training split (80% of 6,739,258
rows), on a synthetic DREAM-like library. Encoding alone is timed too: on a fast GPU it can
bound a single worker's rate.

    python scripts/bench_throughput.py                     # CUDA if present, else CPU
    python scripts/bench_throughput.py --models legnet --batch-size 1024 --precisions fp32 bf16
    python scripts/bench_throughput.py --smoke             # tiny, for CI
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from raydream.data.encode import one_hot
from raydream.data.synthetic import generate_library
from raydream.models import create_model
from raydream.train.config import PRECISIONS, TrainConfig, build_model_config
from raydream.train.optim import make_recipe
from raydream.train.steps import predict, train_epoch

FULL_TRAIN_ROWS = int(6_739_258 * 0.8)  # the DREAM training set under the default 80/10/10 split
# Each family's loss and inputs as its search space sets them (raydream/search_spaces/NAME.yaml).
FAMILY_TRAIN = {
    "baseline_cnn": {},
    "resnet": {},
    "cls_cnn": {"loss": "cross_entropy"},
    "legnet": {"loss": "soft_kl", "input_flags": True, "optimizer": "adamw_onecycle"},
}


def dream_batches(n_batches: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Batches of a synthetic DREAM-like library (raydream.data.synthetic): 110 bp promoters
    with the real flanks and planted motifs, and assay-like expression values."""
    library = generate_library(n_batches * batch_size, seed)
    seqs = np.array(library.sequences, dtype=object)
    return [{"sequence": seqs[i : i + batch_size], "expression": library.measured[i : i + batch_size]}
            for i in range(0, len(seqs), batch_size)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, precision: str, batches: list[dict], device: torch.device) -> dict:
    """Samples/s of training and of prediction for one family and precision (after a warm-up)."""
    cfg = TrainConfig(batch_size=len(batches[0]["expression"]), precision=precision, **FAMILY_TRAIN[name])
    torch.manual_seed(0)
    model = create_model(name, build_model_config(name, {}, cfg)).to(device)
    recipe = make_recipe(model, cfg, steps_per_epoch=len(batches) + 2)
    train_epoch(model, recipe, batches[:2], cfg, device)  # warm-up: cuDNN algorithm choice, allocator
    _synchronize(device)
    start = time.perf_counter()
    _, samples = train_epoch(model, recipe, batches, cfg, device)
    _synchronize(device)
    train_rate = samples / (time.perf_counter() - start)
    start = time.perf_counter()
    preds, _ = predict(model, batches, cfg, device)
    predict_rate = len(preds) / (time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "precision": precision, "params": params, "train_per_s": train_rate,
            "predict_per_s": predict_rate, "epochs_per_hour": 3600 * train_rate / FULL_TRAIN_ROWS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet", "legnet"], choices=sorted(FAMILY_TRAIN))
    p.add_argument("--precisions", nargs="+", default=None, choices=PRECISIONS,
                   help="default: fp32 bf16 fp16 on CUDA, fp32 bf16 on CPU")
    p.add_argument("--batch-size", type=int, default=None, help="default 1024 on CUDA, 128 on CPU")
    p.add_argument("--batches", type=int, default=None, help="timed batches (default 60 on CUDA, 10 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--smoke", action="store_true", help="a few small batches of resnet in fp32, for CI")
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions or (["fp32", "bf16", "fp16"] if gpu else ["fp32", "bf16"])
    batch_size = args.batch_size or (1024 if gpu else 128)
    n_batches = args.batches or (60 if gpu else 10)
    models = args.models
    if args.smoke:
        models, precisions, batch_size, n_batches = ["resnet"], ["fp32"], 32, 3
    batches = dream_batches(n_batches, batch_size)

    start = time.perf_counter()
    for batch in batches:
        one_hot(batch["sequence"], 110)
    encode_rate = n_batches * batch_size / (time.perf_counter() - start)

    where = torch.cuda.get_device_name(device) if gpu else (platform.processor() or platform.machine())
    print(f"device: {where}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); "
          f"batch {batch_size}, {n_batches} timed batches")
    print(f"one-hot encoding alone (CPU, one thread of the worker): {encode_rate:,.0f} samples/s")
    header = f"{'model':<14}{'precision':<11}{'params':>10}{'train/s':>12}{'vs fp32':>9}{'predict/s':>12}{'epochs/h':>10}"
    print(header)
    rows = []
    for name in models:
        base = None
        for precision in precisions:
            row = measure(name, precision, batches, device)
            base = base or row["train_per_s"]
            rows.append(row)
            print(f"{name:<14}{precision:<11}{row['params']:>10,}{row['train_per_s']:>12,.0f}"
                  f"{row['train_per_s'] / base:>8.2f}x{row['predict_per_s']:>12,.0f}{row['epochs_per_hour']:>10.2f}")
    print(f"epochs/h: full passes over {FULL_TRAIN_ROWS:,} training rows per hour on this one device")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "torch": torch.__version__, "batch_size": batch_size,
                       "encode_per_s": encode_rate, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
