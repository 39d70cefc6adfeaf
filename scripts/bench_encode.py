"""Where should one-hot encoding run? Cost of encoding a batch vs. training on it.

Prints, per batch: the vectorised encoder, a per-base Python loop for reference, and one
ResNet training step on already-encoded tensors, with ratios. If encoding is a small
fraction of a step, doing it inside the Train worker loop (raydream's choice) costs little
and keeps the Ray Data pipeline a plain Parquet read.

    python scripts/bench_encode.py            # 40 batches of 128
    python scripts/bench_encode.py --smoke    # a few batches, for CI
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from raydream.data.encode import one_hot
from raydream.models import create_model
from raydream.train.config import TrainConfig
from raydream.train.optim import AdamThenSGD


def python_loop_one_hot(seqs, length: int) -> np.ndarray:
    out = np.zeros((len(seqs), 4, length), dtype=np.float32)
    for i, seq in enumerate(seqs):
        for j, base in enumerate(seq[:length]):
            k = "ACGT".find(base)
            if k >= 0:
                out[i, k, j] = 1.0
            elif base == "N":
                out[i, :, j] = 0.25
    return out


def timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a Train worker's CPUs)")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args()
    batches = 3 if args.smoke else args.batches
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    seqs = np.array(
        ["".join(rng.choice(list("ACGT"), size=110)) for _ in range(args.batch_size)], dtype=object
    )
    cfg = TrainConfig()
    model = create_model("resnet")
    recipe = AdamThenSGD(model.parameters(), cfg)
    x = torch.from_numpy(one_hot(seqs, cfg.seq_len))
    y = torch.rand(args.batch_size) * 17

    def step() -> None:
        recipe.step(torch.nn.functional.mse_loss(model(x), y))

    step()  # warm-up
    encode = timed(lambda: one_hot(seqs, cfg.seq_len), batches)
    loop = timed(lambda: python_loop_one_hot(seqs, cfg.seq_len), max(1, batches // 4))
    train = timed(step, batches)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {args.threads}, batch {args.batch_size}")
    print(f"{'per batch':<28}{'ms':>10}")
    print(f"{'vectorised one_hot':<28}{encode * 1e3:>10.2f}")
    print(f"{'python per-base loop':<28}{loop * 1e3:>10.2f}")
    print(f"{'resnet train step':<28}{train * 1e3:>10.2f}")
    print(f"vectorised encoder is {loop / encode:.0f}x faster than the loop; "
          f"encoding costs {encode / train:.1%} of a training step")


if __name__ == "__main__":
    main()
