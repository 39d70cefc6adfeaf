"""How fast one node reads prepared shards: Ray Data against a bare pyarrow read.

Prepares a synthetic DREAM-format library (raydream.prepare's shards, zstd Parquet), then
times, over its training split: pyarrow reading every shard into memory, and Ray Data
streaming it as numpy batches the way each Train worker iterates (`iter_batches`), on a
local Ray with --cpus CPUs, read as raydream reads and (without --smoke) with Ray Data's
default Parquet reader. Prints rows/s and the ratios. One-hot encoding is timed too, since
a Train worker encodes what it reads.

    python scripts/bench_read.py --rows 2000000 --cpus 2
    python scripts/bench_read.py --smoke
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from raydream.data.encode import one_hot
from raydream.data.prepare import PrepareOptions, prepare_synthetic, split_files
from raydream.train.loop import read_shards


def timed(fn) -> tuple[float, int]:
    """(seconds, rows) of fn(), which returns the rows it read."""
    start = time.perf_counter()
    rows = fn()
    return time.perf_counter() - start, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="synthetic library size (default 1,000,000)")
    p.add_argument("--rows-per-shard", type=int, default=PrepareOptions.rows_per_shard)
    p.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray (default: all)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--smoke", action="store_true", help="20,000 rows, for CI")
    args = p.parse_args()
    rows = 20_000 if args.smoke else args.rows
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        prepare_synthetic(rows, root, options=PrepareOptions(rows_per_shard=args.rows_per_shard))
        prepare_s = time.perf_counter() - start
        files = split_files(root, "train")
        size = sum(Path(f).stat().st_size for f in files)

        def arrow_read() -> int:
            table = pq.read_table(files)
            table.column("sequence").to_numpy(zero_copy_only=False)
            return table.num_rows

        arrow_s, n = timed(arrow_read)
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False

            def ray_read(dataset) -> int:
                batches = dataset.iter_batches(batch_size=args.batch_size, batch_format="numpy")
                return sum(len(b["sequence"]) for b in batches)

            # As raydream's Train runs read (Ray Data's first Parquet datasource), and as
            # ray.data.read_parquet does by default in Ray 2.60 (a pool of footer-reading
            # actors for every execution).
            ray_read(read_shards(str(root), "train"))  # warm-up: Ray's worker processes start
            ray_s, ray_rows = timed(lambda: ray_read(read_shards(str(root), "train")))
            default_s = None
            if not args.smoke:
                default_s, default_rows = timed(lambda: ray_read(ray.data.read_parquet(files)))
                assert default_rows == n, (default_rows, n)
        finally:
            ray.shutdown()
        seqs = pq.read_table(files[0], columns=["sequence"]).column("sequence").to_numpy(zero_copy_only=False)
        encode_s, encoded = timed(lambda: sum(len(one_hot(seqs[i:i + args.batch_size], 110))
                                              for i in range(0, len(seqs), args.batch_size)))
    assert ray_rows == n, (ray_rows, n)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; local Ray with "
          f"{args.cpus} CPU(s)")
    print(f"training split: {n:,} rows in {len(files)} shard(s), {size / 1e6:.1f} MB; "
          f"prepare of {rows:,} rows took {prepare_s:.1f} s")
    print(f"{'read':<36}{'s':>8}{'rows/s':>14}")
    print(f"{'pyarrow read_table (one process)':<36}{arrow_s:>8.2f}{n / arrow_s:>14,.0f}")
    print(f"{'Ray Data iter_batches (raydream)':<36}{ray_s:>8.2f}{n / ray_s:>14,.0f}")
    if default_s is not None:
        print(f"{'Ray Data, default Parquet reader':<36}{default_s:>8.2f}{n / default_s:>14,.0f}")
    print(f"{'one-hot encoding (one thread)':<36}{encode_s:>8.2f}{encoded / encode_s:>14,.0f}")
    print(f"Ray Data reads at {arrow_s / ray_s:.2f}x the bare pyarrow rate (after a warm-up read)")
    if default_s is not None:
        print(f"raydream's read takes {ray_s / default_s:.2f}x the time of Ray Data's default Parquet reader")


if __name__ == "__main__":
    main()
