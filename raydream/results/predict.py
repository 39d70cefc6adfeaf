"""`python -m raydream.predict`: expression predictions from a search's best checkpoints (no Ray).

    python -m raydream.predict --experiment ray_results/resnet-... --input test.txt --output pred.json
    python -m raydream.predict --checkpoint CKPT [CKPT ...] --input seqs.txt --output pred.tsv

Input: a DREAM file (SEQUENCE<TAB>EXPRESSION; the values are ignored) or a plain list of
sequences, one per line. Output: by its suffix, a DREAM submission JSON (`{"0": value, ...}`,
keys in input order) or a TSV with the header `sequence<TAB>prediction`; both are what
`python -m raydream.evaluate --pred` reads. With `--top-k K` (or several `--checkpoint`s)
the prediction is the mean over those models (an ensemble).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from raydream.results.inference import DEFAULT_BATCH_SIZE, predict, resolve_device
from raydream.core.errors import ArgumentParser, ConfigError, DataError, run_cli
from raydream.data.dream import RowRules
from raydream.core.files import is_within, refuse_overwriting_inputs, require_regular_file, write_text_atomic

def read_sequences(path: str | os.PathLike, rules: RowRules = RowRules()) -> np.ndarray:
    """Upper-case sequences of a DREAM file or a one-per-line list (plain or gzip), in file
    order, validated by the same rules either way (`raydream.data.dream`).

    Raises:
        DataError: naming the file and line of the first bad row or sequence.
    """
    from raydream.data.dream import DreamReader, first_line, read_sequence_lines

    path = require_regular_file(path)
    try:
        dream = "\t" in first_line(path)
    except (OSError, EOFError):  # not gzip after all, truncated, ...: the reader below says which
        dream = False
    if dream:
        tables = list(DreamReader(path, rules))
        return np.concatenate([t.column("sequence").to_numpy(zero_copy_only=False) for t in tables]).astype(object)
    return np.asarray(read_sequence_lines(path, rules), dtype=object)


def best_checkpoints(experiment: str | os.PathLike, k: int) -> list[str]:
    """The checkpoints of the k best trials of a search (by best validation R^2); those of an
    experiment in an object store are read from its local mirror.

    Raises:
        ConfigError: k < 1, or the experiment has fewer than k trials with a checkpoint.
    """
    from raydream.results.table import experiment_table, local_experiment

    if k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {k}")
    table = experiment_table(local_experiment(experiment))
    paths = [str(p) for p in table["checkpoint"] if isinstance(p, str) and Path(p).is_dir()][:k]
    if len(paths) < k:
        raise ConfigError(f"{experiment}: {len(paths)} trial(s) with a checkpoint, fewer than --top-k {k}")
    return paths


def write_predictions(path: str | os.PathLike, sequences: np.ndarray, predictions: np.ndarray) -> Path:
    """A DREAM submission JSON (suffix .json) or a sequence<TAB>prediction TSV."""
    path = Path(path)
    if path.suffix == ".json":
        return write_text_atomic(path, json.dumps({str(i): float(v) for i, v in enumerate(predictions)}))
    rows = "".join(f"{s}\t{v:.6g}\n" for s, v in zip(sequences, predictions))
    return write_text_atomic(path, "sequence\tprediction\n" + rows)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m raydream.predict",
                                description="Predict expression with a search's best checkpoints (no Ray).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", help="experiment directory or URI (s3://...): use its best trial(s)")
    source.add_argument("--checkpoint", nargs="+", help="checkpoint directory (several: their mean)")
    p.add_argument("--top-k", type=int, default=1, help="with --experiment: average the best K trials (default 1)")
    p.add_argument("--input", required=True, help="DREAM file or one sequence per line (plain or .gz)")
    p.add_argument("--output", required=True, help="predictions: .json (DREAM submission) or TSV")
    p.add_argument("--min-length", type=int, default=80, help="shortest valid input sequence, bp (default 80)")
    p.add_argument("--max-length", type=int, default=150, help="longest valid input sequence, bp (default 150)")
    p.add_argument("--device", default="cpu", help="where networks predict: cpu (default), cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"sequences per forward pass (default {DEFAULT_BATCH_SIZE})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rules = RowRules(args.min_length, args.max_length)
    resolve_device(args.device)  # before reading anything
    refuse_overwriting_inputs(args.output, [args.input], "--output")
    if args.experiment is None:
        for checkpoint in args.checkpoint:
            if not Path(checkpoint).is_dir():
                found = "is a file, not a checkpoint directory" if Path(checkpoint).exists() else "no such checkpoint directory"
                raise DataError(f"{checkpoint}: {found}")
            if is_within(args.output, checkpoint):
                raise DataError(f"--output {args.output}: is inside the checkpoint {checkpoint}; write it elsewhere")
    sequences = read_sequences(args.input, rules)
    checkpoints = best_checkpoints(args.experiment, args.top_k) if args.experiment else args.checkpoint
    predictions = predict(checkpoints, sequences, device=args.device, batch_size=args.batch_size, rules=rules)
    out = write_predictions(args.output, sequences, predictions)
    print(f"{len(sequences)} predictions from {len(checkpoints)} model(s) written to {out}")
    return 0


def console() -> int:
    """The `raydream-predict` command: the same as `python -m raydream.predict`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
