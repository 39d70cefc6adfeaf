"""Ingest a DREAM text file into validated, split Parquet shards with a manifest.

Layout of a prepared dataset directory::

    manifest.json
    train/part-00000.parquet ...
    val/part-00000.parquet ...
    test/part-00000.parquet ...

Every split has at least one shard (possibly empty) so readers never meet a missing split.
The directory is built under a temporary name beside the target and renamed into place, so
an interrupted or failed run leaves nothing half-written.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from raydream.core import storage
from raydream import __version__
from raydream.data.dream import DreamReader, RowRules, file_sha256
from raydream.data.splits import SPLIT_BY, SPLITS, SplitFractions, assign_splits
from raydream.core.errors import DataError
from raydream.core.files import check_writable_location, is_within, require_regular_file, temporary_sibling

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SHARD_SCHEMA = pa.schema([("sequence", pa.string()), ("expression", pa.float64())])
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
QUANTILE_STEP = 0.001  # expression quantiles are exact to within half of this


@dataclass(frozen=True)
class PrepareOptions:
    """How a DREAM file becomes shards.

    rules: sequence-length bounds for valid rows.
    fractions: validation and test fractions (by sequence hash).
    split_seed: reshuffles which sequences land in which split.
    split_by: what the split hash reads: "core", the 80 bp random region between the
        construct's flanks (reads of one promoter that differ in their flanks share a split),
        or "sequence", all of it (see raydream.data.splits).
    rows_per_shard: rows per Parquet file; smaller shards give Ray Data more read parallelism.
    skip_invalid: drop and count bad rows instead of stopping at the first.
    """

    rules: RowRules = field(default_factory=RowRules)
    fractions: SplitFractions = field(default_factory=SplitFractions)
    split_seed: int = 0
    rows_per_shard: int = 500_000
    skip_invalid: bool = False
    split_by: str = "core"

    def __post_init__(self) -> None:
        if self.split_by not in SPLIT_BY:
            raise DataError(f"split_by must be one of {', '.join(SPLIT_BY)}, got {self.split_by!r}")
        if self.rows_per_shard < 1:
            raise DataError(f"rows_per_shard must be >= 1, got {self.rows_per_shard}")


class _ShardWriter:
    """Writes one split's rows into zstd Parquet files of at most `rows_per_shard` rows."""

    def __init__(self, root: Path, split: str, rows_per_shard: int):
        self.dir = root / split
        self.dir.mkdir(parents=True)
        self.split = split
        self.rows_per_shard = rows_per_shard
        self.files: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_current = 0

    def _open_next(self) -> None:
        self.close()
        name = f"part-{len(self.files):05d}.parquet"
        self.files.append(f"{self.split}/{name}")
        self._writer = pq.ParquetWriter(self.dir / name, SHARD_SCHEMA, compression="zstd")
        self._in_current = 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None or self._in_current >= self.rows_per_shard:
                self._open_next()
            take = min(self.rows_per_shard - self._in_current, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))
            self._in_current += take
            self.rows += take
            start += take

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> None:
        if not self.files:  # keep every split readable, even when empty
            self._open_next()
        self.close()


class RowSummary:
    """The length histogram and expression statistics of a file's valid rows, added block by
    block in memory that does not grow with the file.

    Quantiles come from counts of the values rounded to QUANTILE_STEP (DREAM values lie in
    0-17: at most 17,001 counts), so they are exact to within half a step; the mean and
    standard deviation (blocks merged with Chan et al.'s pairwise update) and the fraction
    of whole numbers are exact.
    """

    def __init__(self) -> None:
        self.length_counts = np.zeros(0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.int64)  # values / QUANTILE_STEP, rounded; sorted
        self.counts = np.zeros(0, dtype=np.int64)
        self.n, self.mean, self.m2, self.whole = 0, 0.0, 0.0, 0

    def add(self, lengths: np.ndarray, values: np.ndarray) -> None:
        counts = np.bincount(lengths)
        if len(counts) > len(self.length_counts):
            self.length_counts = np.pad(self.length_counts, (0, len(counts) - len(self.length_counts)))
        self.length_counts[: len(counts)] += counts
        if not len(values):
            return
        keys, key_counts = np.unique(np.round(values / QUANTILE_STEP).astype(np.int64), return_counts=True)
        merged, where = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        self.counts = np.bincount(where, weights=np.concatenate([self.counts, key_counts]),
                                  minlength=len(merged)).astype(np.int64)
        self.keys = merged
        n, mean = len(values), float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.whole += int(np.count_nonzero(values == np.floor(values)))

    def quantile(self, q: float) -> float:
        """As numpy's default (linear) quantile of the rounded values."""
        position = q * (self.n - 1)
        below, above = int(np.floor(position)), int(np.ceil(position))
        ends = np.cumsum(self.counts)
        low, high = (self.keys[np.searchsorted(ends, r, side="right")] * QUANTILE_STEP for r in (below, above))
        return round(float(low + (high - low) * (position - below)), 6)

    def manifest_entries(self) -> tuple[dict, dict]:
        """(length_histogram, expression) as the manifest records them."""
        histogram = {str(n): int(c) for n, c in enumerate(self.length_counts) if c}
        if self.n == 0:
            return histogram, {}
        expression = {
            "quantiles": {str(q): self.quantile(q) for q in QUANTILES},
            "mean": self.mean,
            "std": float(np.sqrt(self.m2 / self.n)),
            "whole_number_fraction": self.whole / self.n,
        }
        return histogram, expression


def _prepare_to_store(source: str | os.PathLike, out: str, options: PrepareOptions, overwrite: bool,
                      manifest_extra: dict | None, source_label: str | None) -> dict:
    """Prepare into a local temporary directory, then upload under the URI `out`: the shards
    first and the manifest last, so a dataset whose upload stopped has no manifest and is
    refused by `load_manifest`; a failed upload removes what it wrote. With `overwrite`, what
    `out` held is deleted only once the new dataset is ready to upload (bad input keeps it)."""
    fs, root = storage.filesystem(out)
    held = storage.is_dir(out)
    if held and not overwrite:
        raise DataError(f"{out}: already holds files (use --overwrite to replace them)")
    if held and not is_dataset(out):
        raise DataError(f"--out {out}: holds files that are not a prepared dataset (no raydream {MANIFEST}); "
                        f"--overwrite replaces only a dataset raydream.prepare wrote")
    with tempfile.TemporaryDirectory(prefix="raydream-prepare-") as tmp:
        local = Path(tmp) / "dataset"
        manifest = prepare_dataset(source, local, options, manifest_extra=manifest_extra,
                                   source_label=source_label)
        text = (local / MANIFEST).read_text()
        (local / MANIFEST).unlink()
        try:
            if held:
                fs.delete_dir_contents(root, missing_dir_ok=True)
            storage.upload_dir(local, out)
            storage.write_text(storage.join(out, MANIFEST), text)
        except BaseException:
            fs.delete_dir_contents(root, missing_dir_ok=True)
            raise
    return manifest


def prepare_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    options: PrepareOptions = PrepareOptions(),
    overwrite: bool = False,
    manifest_extra: dict | None = None,
    source_label: str | None = None,
) -> dict:
    """Validate, split and shard a DREAM file into `out`; return the manifest.

    manifest_extra: keys added to the manifest's top level.
    source_label: recorded as the source path instead of `source` (for generated files).

    Raises:
        DataError: bad input (naming file and line), or `out` exists and not `overwrite`.
    """
    if storage.is_remote(out):
        return _prepare_to_store(source, str(out), options, overwrite, manifest_extra, source_label)
    source, out = Path(source), Path(out)
    check_output_dir(out, source, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    try:  # made inside: a signal that lands just after mkdir still finds it removed
        tmp.mkdir()
        manifest = _write_shards(source, tmp, options, manifest_extra or {}, source_label)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


_SHARD_NAME = re.compile(r"^(train|val|test)/part-[0-9]{5}\.parquet$")


def is_dataset(location: str | os.PathLike) -> bool:
    """True when `location` holds what raydream.prepare writes: a manifest it wrote (the
    shards may be damaged), or only shards named as it names them (an upload that stopped
    before its manifest)."""
    path = storage.join(location, MANIFEST)
    try:
        if storage.is_file(path):
            manifest = json.loads(storage.read_text(path))
            return isinstance(manifest, dict) and str(manifest.get("created_by", "")).startswith("raydream")
        names = storage.list_files(location)
    except (DataError, ValueError, UnicodeDecodeError):
        return False
    return bool(names) and all(_SHARD_NAME.match(name) for name in names)


def check_output_dir(out: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse an output directory that would destroy something that is not raydream's output.

    `out` may not be the input file, nor a directory that holds it; an existing `out` is
    replaced only with `overwrite`, and only when it is itself a prepared dataset.

    Raises:
        DataError: naming the output and what it would destroy.
    """
    if source is not None and is_within(source, out):  # out is the input, or holds it
        raise DataError(f"--out {out}: would replace the input {source}; give a new directory for the dataset")
    check_writable_location(out, "--out")
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise DataError(f"{out}: output directory already exists (use --overwrite to replace it)")
    if not out.is_dir() or not is_dataset(out):
        raise DataError(f"--out {out}: exists and is not a prepared dataset (no raydream {MANIFEST}); --overwrite "
                        f"replaces only a dataset raydream.prepare wrote")


def _write_split_tables(writers: list[_ShardWriter], table: pa.Table, split: np.ndarray) -> None:
    for index, writer in enumerate(writers):
        mask = split == index
        if mask.any():
            writer.write(table.filter(pa.array(mask)))


def _write_shards(source: Path, root: Path, options: PrepareOptions, extra: dict, label: str | None) -> dict:
    reader = DreamReader(source, options.rules, skip_invalid=options.skip_invalid)
    writers = [_ShardWriter(root, split, options.rows_per_shard) for split in SPLITS]
    summary = RowSummary()
    # Parquet encoding of block k (a thread; pyarrow releases the GIL) overlaps parsing and
    # validating block k+1. At most one write is in flight, which bounds memory.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer") as pool:
        pending = None
        try:
            for table in reader:
                if table.num_rows == 0:
                    continue
                sequences = table.column("sequence").combine_chunks()
                split = assign_splits(sequences, options.fractions, options.split_seed, options.split_by)
                summary.add(pc.binary_length(sequences).to_numpy(), table.column("expression").to_numpy())
                if pending is not None:
                    pending.result()
                pending = pool.submit(_write_split_tables, writers, table, split)
            if pending is not None:
                pending.result()
        finally:
            if pending is not None:
                pending.exception()  # wait for it before closing files
            for writer in writers:
                writer.finish()
    valid, skipped = sum(w.rows for w in writers), reader.skipped
    if valid == 0:
        raise DataError(f"{source}: no valid rows ({skipped} skipped as invalid)")
    histogram, expression = summary.manifest_entries()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_by": f"raydream {__version__}",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {
            "path": label or str(source.resolve()),
            "sha256": reader.sha256,
            "bytes": source.stat().st_size,
        },
        "options": {
            **asdict(options.rules),
            "val_fraction": options.fractions.val,
            "test_fraction": options.fractions.test,
            "split_seed": options.split_seed,
            "split_by": options.split_by,
            "rows_per_shard": options.rows_per_shard,
            "skip_invalid": options.skip_invalid,
        },
        "rows": {
            "read": valid + skipped,
            "valid": valid,
            "skipped": skipped,
            **{w.split: w.rows for w in writers},
        },
        "shards": {w.split: w.files for w in writers},
        "checksums": {name: {"bytes": (root / name).stat().st_size, "sha256": file_sha256(root / name)}
                      for w in writers for name in w.files},
        "columns": {f.name: str(f.type) for f in SHARD_SCHEMA},
        "length_histogram": histogram,
        "expression": expression,
        **extra,
    }
    with open(root / MANIFEST, "w") as fh:
        json.dump(manifest, fh, indent=2)
    return manifest


def prepare_synthetic(
    rows: int,
    out: str | os.PathLike,
    seed: int = 0,
    options: PrepareOptions = PrepareOptions(),
    overwrite: bool = False,
) -> dict:
    """Generate a synthetic library (raydream.data.synthetic) and prepare it into `out`.

    The manifest's `synthetic` key records the generator's settings and the noise ceiling
    (R^2 of E[value | sequence] against the measured values), over all rows and per split
    (`noise_ceiling_r2_by_split`; None for a split with fewer than two rows).
    """
    from raydream.data.synthetic import MeasurementModel, generate_library, library_summary, write_dream

    model = MeasurementModel()
    library = generate_library(rows, seed, model)
    summary = library_summary(library, seed, model)
    block = 500_000  # rows hashed at once: bounded memory for a library of millions
    split = np.concatenate([np.zeros(0, dtype=np.int8)] + [
        assign_splits(pa.array(library.sequences[i:i + block]), options.fractions, options.split_seed, options.split_by)
        for i in range(0, len(library.sequences), block)])
    summary["noise_ceiling_r2_by_split"] = {
        name: library.noise_ceiling_r2_of(split == index) for index, name in enumerate(SPLITS)
    }
    with tempfile.TemporaryDirectory() as tmp:
        source = write_dream(library, Path(tmp) / f"synthetic-{rows}-seed{seed}.txt")
        return prepare_dataset(
            source,
            out,
            options,
            overwrite,
            manifest_extra={"synthetic": summary},
            source_label=f"synthetic:{rows}:seed={seed}",
        )


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished dataset `tmp` to `out`; a dataset `out` held (--overwrite) is removed
    once the new one is in place, and put back if the move stops half way (a signal between
    the two renames)."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = temporary_sibling(out)
    try:
        os.rename(out, old)
        os.rename(tmp, out)
    finally:
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists():
            os.rename(old, out)


def load_manifest(root: str | os.PathLike, verify: bool = False) -> dict:
    """Read and check a prepared dataset's manifest: every listed shard must exist, with the
    size the manifest records.

    root: a directory, or an object-store URI the dataset was uploaded to (`s3://...`).
    verify: also hash every local shard against the manifest's sha256 and read its Parquet
        footer (a search does this once, before Ray starts); stored shards are checked by
        size only, which needs no download.

    Raises:
        DataError: naming the directory or file and what is missing or wrong.
    """
    path = storage.join(root, MANIFEST)
    if not storage.is_file(path):
        raise DataError(f"{root}: not a prepared dataset (no {MANIFEST}); run `python -m raydream.prepare` first")
    try:
        manifest = json.loads(storage.read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {version!r}, this raydream reads version {SCHEMA_VERSION}")
    for key in ("rows", "shards", "source"):
        if key not in manifest:
            raise DataError(f"{path}: missing key {key!r}")
    if not isinstance(manifest["shards"], dict):
        raise DataError(f"{path}: 'shards' must map each split to its list of files")
    names: list[str] = []
    owner: dict[str, str] = {}
    for split in SPLITS:
        files = manifest["shards"].get(split)
        if not files or not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise DataError(f"{path}: no shards listed for split {split!r}")
        for name in files:
            parts = Path(name).parts
            if Path(name).is_absolute() or ".." in parts or not parts:
                raise DataError(f"{path}: shard {name!r} of split {split!r} is not a path inside the dataset")
            if name in owner:
                where = "twice" if owner[name] == split else f"in both {owner[name]!r} and {split!r}"
                raise DataError(f"{path}: shard {name!r} is listed {where}; the splits must be disjoint")
            owner[name] = split
        names += files
    listed = [storage.join(root, name) for name in names]
    recorded = manifest.get("checksums") or {}  # manifests of earlier versions have none
    for name, shard, size in zip(names, listed, storage.file_sizes(listed)):
        if size is None:
            raise DataError(f"{shard}: shard listed in {MANIFEST} is missing")
        expected = recorded.get(name, {})
        if "bytes" in expected and size != expected["bytes"]:
            raise DataError(f"{shard}: {size} bytes, {MANIFEST} records {expected['bytes']}: the shard changed "
                            f"after it was prepared; prepare the dataset again")
        if verify and not storage.is_remote(root):
            _verify_shard(shard, expected.get("sha256"))
    return manifest


def _verify_shard(shard: str, sha256: str | None) -> None:
    """Check a local shard's bytes against the manifest's checksum, and that it is Parquet."""
    if sha256 is not None and file_sha256(shard) != sha256:
        raise DataError(f"{shard}: its sha256 no longer matches {MANIFEST}: the shard changed after it was "
                        f"prepared; prepare the dataset again")
    try:
        pq.read_metadata(shard)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{shard}: not a readable Parquet file ({err}); prepare the dataset again") from None


def split_files(root: str | os.PathLike, split: str, manifest: dict | None = None) -> list[str]:
    """One split's shards in a prepared dataset: absolute paths, or URIs for a stored one.
    manifest: the dataset's, when the caller has loaded it already (else it is loaded)."""
    manifest = manifest if manifest is not None else load_manifest(root)
    base = storage.resolve(root)
    return [storage.join(base, name) for name in manifest["shards"][split]]


def read_split(root: str | os.PathLike, split: str, columns: tuple[str, ...] = ("sequence", "expression"),
               limit: int = 0, manifest: dict | None = None) -> pa.Table:
    """One split of a prepared dataset as a pyarrow Table: the given columns, and only the
    first `limit` rows when limit > 0 (read from as many shards as they take). manifest: the
    dataset's, when the caller has loaded it already."""
    fs, paths = storage.arrow_paths(split_files(root, split, manifest))
    if limit:
        return ds.dataset(paths, filesystem=fs, format="parquet").head(limit, columns=list(columns))
    return pq.read_table(paths, columns=list(columns), filesystem=fs)


def default_data_file() -> Path:
    """The embedded 6,370-row DREAM 2022 sample (de Boer lab, MIT licence)."""
    return Path(str(resources.files("raydream.data") / "default" / "dream_sample_train.txt.gz"))


def cache_root() -> Path:
    """Where prepared copies of data files are kept: $RAYDREAM_CACHE or ~/.cache/raydream."""
    if env := os.environ.get("RAYDREAM_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "raydream"


def resolve_dataset(data: str | os.PathLike | None, cache_dir: Path | None = None) -> Path | str:
    """Turn a `--data` argument into a prepared dataset directory (or URI).

    None means the embedded sample; a directory, or an object-store URI, must hold a
    prepared dataset; a file is prepared with default options into
    `cache_dir/datasets/<sha256 prefix>` once, then reused.
    """
    if data is not None and storage.is_remote(data):
        load_manifest(data)
        return storage.resolve(data)
    source = default_data_file() if data is None else Path(data)
    if source.is_dir():
        load_manifest(source)
        return source
    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    require_regular_file(source, "DREAM file or prepared dataset directory")
    digest = file_sha256(source)
    target = (cache_dir or cache_root()) / "datasets" / digest[:16]
    try:
        manifest = load_manifest(target)
        # A copy prepared with other split rules (an older raydream's) is prepared again.
        if (manifest["source"].get("sha256") == digest
                and manifest.get("options", {}).get("split_by", "sequence") == PrepareOptions().split_by):
            return target
    except DataError:
        pass
    log.info("preparing %s into %s", source, target)
    try:
        prepare_dataset(source, target, overwrite=target.exists())
    except OSError:
        # Another process may have prepared the same file concurrently; accept its result.
        if load_manifest(target)["source"].get("sha256") != digest:
            raise
    return target
