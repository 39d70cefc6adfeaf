"""Ingestion cost: `python -m raydream.prepare` against a bare pyarrow read + Parquet write.

Writes a synthetic DREAM-format file (raydream.data.synthetic: 110 bp promoters, values in
0-17, whole numbers printed without decimals) of --rows rows, then runs, each in a child
process so that its peak resident memory is its own:

* raydream: `python -m raydream.prepare FILE --out DIR` (validation of every row, hash
  splits, zstd Parquet shards, manifest with quantiles, atomic rename);
* bare: `pyarrow.csv.read_csv` of the whole file and one `pyarrow.parquet.write_table`
  (zstd), no validation.

Both again on the first half of the file show how peak memory grows with file size.
Prints seconds, rows/s, peak RSS and the ratios. Goal: raydream at most 2x the bare time,
with peak memory that does not grow with the file.

    python scripts/bench_ingest.py                  # 6,739,258 rows, the DREAM 2022 training set's size
    python scripts/bench_ingest.py --rows 1000000
    python scripts/bench_ingest.py --smoke          # 20,000 rows, for CI
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DREAM_TRAIN_ROWS = 6_739_258

BARE = """
import sys
import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
table = csv.read_csv(sys.argv[1], read_options=csv.ReadOptions(column_names=["sequence", "expression"]),
                     parse_options=csv.ParseOptions(delimiter="\\t"),
                     convert_options=csv.ConvertOptions(column_types={"sequence": pa.string(),
                                                                      "expression": pa.float64()}))
pq.write_table(table, sys.argv[2], compression="zstd")
"""

GENERATE = """
import sys
from raydream.data.synthetic import generate_library, write_dream
write_dream(generate_library(int(sys.argv[1]), int(sys.argv[2])), sys.argv[3])
"""


def run_child(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a child Python process, its rusage read with wait4."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(args[:3])} failed:\n{err.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux: KB


def measure(source: Path, work: Path) -> dict[str, tuple[float, float]]:
    """{contender: (seconds, peak MB)} on one file."""
    raydream = run_child(["-m", "raydream.prepare", str(source), "--out", str(work / f"prepared-{source.stem}")])
    bare = run_child(["-c", BARE, str(source), str(work / f"bare-{source.stem}.parquet")])
    return {"raydream": raydream, "bare": bare}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=DREAM_TRAIN_ROWS, help="rows in the file (default 6,739,258)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="20,000 rows, for CI")
    args = p.parse_args()
    rows = 20_000 if args.smoke else args.rows

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        full = work / "full.txt"
        # Generated in a child too: a child's peak RSS counts the pages it shares with this
        # process between fork and exec, so this process must stay small.
        generate_s, _ = run_child(["-c", GENERATE, str(rows), str(args.seed), str(full)])
        half = work / "half.txt"
        with open(full) as src, open(half, "w") as dst:
            dst.writelines(itertools.islice(src, max(rows // 2, 1)))
        # Peak RSS is read per child with wait4, so the order of the runs does not matter;
        # the smaller file goes first to warm the page cache and imports for both.
        small = measure(half, work)
        big = measure(full, work)
        size_mb = full.stat().st_size / 1e6

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}")
    print(f"file: {rows:,} rows, {size_mb:.1f} MB (generated in {generate_s:.1f} s); its first half: "
          f"{max(rows // 2, 1):,} rows")
    print(f"{'ingest of the whole file':<40}{'s':>8}{'rows/s':>12}{'peak MB':>10}{'half: peak MB':>15}")
    for name, label in (("raydream", "raydream.prepare (validate, split)"), ("bare", "pyarrow read_csv + write_table")):
        seconds, peak = big[name]
        print(f"{label:<40}{seconds:>8.2f}{rows / seconds:>12,.0f}{peak:>10.0f}{small[name][1]:>15.0f}")
    time_ratio = big["raydream"][0] / big["bare"][0]
    print(f"raydream.prepare takes {time_ratio:.2f}x the bare read/write time (goal: at most 2x)")
    for name in ("raydream", "bare"):
        print(f"{name}: peak memory on the whole file is {big[name][1] / small[name][1]:.2f}x that on its "
              f"first half")


if __name__ == "__main__":
    main()
