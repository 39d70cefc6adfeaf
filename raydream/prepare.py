"""`python -m raydream.prepare INPUT --out DIR`: DREAM text -> validated Parquet shards."""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Sequence

from raydream.data.dream import DEFAULT_EXPRESSION_RANGE, RowRules
from raydream.data.prepare import PrepareOptions, prepare_dataset, prepare_synthetic
from raydream.data.splits import SPLIT_BY, SplitFractions
from raydream.core.errors import ArgumentParser, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m raydream.prepare",
        description="Validate a DREAM file (SEQUENCE<TAB>EXPRESSION, no header; .gz accepted), "
        "or generate a synthetic one, split it by a hash of each sequence's random region and write zstd Parquet shards "
        "plus manifest.json.",
    )
    p.add_argument("input", nargs="?", help="DREAM text file (.txt or .txt.gz)")
    p.add_argument("--synthetic", type=int, metavar="N", help="instead of INPUT, generate N synthetic promoters with planted motifs")
    p.add_argument("--seed", type=int, default=0, help="seed of the --synthetic generator (default 0)")
    p.add_argument("--out", required=True, help="output directory, or a URI (s3://bucket/prefix) to upload to; must "
                   "not exist unless --overwrite")
    p.add_argument("--min-length", type=int, default=80, help="shortest valid sequence, bp (default 80)")
    p.add_argument("--max-length", type=int, default=150, help="longest valid sequence, bp (default 150)")
    p.add_argument("--expression-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   default=list(DEFAULT_EXPRESSION_RANGE),
                   help="valid expression values, inclusive (default %(default)s: DREAM's bins are 0-17; a value "
                        "outside is a raw intensity or a corrupt row)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation fraction (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test fraction (default 0.1)")
    p.add_argument("--split-seed", type=int, default=0, help="changes the split assignment (default 0)")
    p.add_argument("--split-by", choices=SPLIT_BY, default="core",
                   help="what the split hash reads: core (default), the 80 bp random region between the construct's "
                        "flanks, so that reads of one promoter with truncated or misread flanks share a split (a "
                        "sequence without either flank is hashed whole); sequence, all of it")
    p.add_argument("--rows-per-shard", type=int, default=500_000, help="rows per Parquet file (default 500000)")
    p.add_argument("--skip-invalid", action="store_true", help="skip and count bad rows instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.input is None) == (args.synthetic is None):
        parser.error("give either INPUT or --synthetic N")
    if args.synthetic is not None and args.synthetic < 1:
        parser.error(f"--synthetic N: N must be >= 1 promoters, got {args.synthetic}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = PrepareOptions(
        rules=RowRules(args.min_length, args.max_length, *args.expression_range),
        fractions=SplitFractions(args.val_fraction, args.test_fraction),
        split_seed=args.split_seed,
        split_by=args.split_by,
        rows_per_shard=args.rows_per_shard,
        skip_invalid=args.skip_invalid,
    )
    start = time.perf_counter()
    if args.synthetic is not None:
        manifest = prepare_synthetic(args.synthetic, args.out, args.seed, options, overwrite=args.overwrite)
    else:
        manifest = prepare_dataset(args.input, args.out, options, overwrite=args.overwrite)
    rows = manifest["rows"]
    print(
        f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {rows['valid']} rows "
        f"(train {rows['train']}, val {rows['val']}, test {rows['test']}), "
        f"{rows['skipped']} skipped"
    )
    print("expression quantiles:", json.dumps(manifest["expression"].get("quantiles", {})))
    if "synthetic" in manifest:
        synthetic = manifest["synthetic"]
        by_split = ", ".join(f"{name} {value:.4f}" for name, value in synthetic["noise_ceiling_r2_by_split"].items()
                             if value is not None)
        print(f"noise ceiling (R^2 of E[value | sequence]): {synthetic['noise_ceiling_r2']:.4f} ({by_split})")
    return 0


def console() -> int:
    """The `raydream-prepare` command: the same as `python -m raydream.prepare`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
