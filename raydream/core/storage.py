"""Locations that are local paths or object-store URIs (`s3://bucket/prefix`, `gs://...`).

Experiments (`--storage-path`, `--resume`) and prepared datasets (`--data`) may live in an
object store that every node of a cluster reaches. Ray Tune and Ray Train write there
themselves (they resolve URIs with `pyarrow.fs.FileSystem.from_uri`); raydream reads and
writes its own files there through the same pyarrow filesystems, and reads an experiment
back by mirroring it into a local directory first, so the table and report code only ever
sees local files.

A URI may carry pyarrow's S3 options as a query string, e.g.
`s3://bucket/ray_results?region=eu-west-1` or `?endpoint_override=http://minio:9000`;
`join` keeps the query at the end. Credentials come from the usual AWS environment
variables, config files or instance role, never from raydream.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from raydream.core.errors import DataError
from raydream.core.files import write_text_atomic


def is_remote(location: str | os.PathLike) -> bool:
    """True for a URI (`scheme://...`), which pyarrow resolves; False for a local path."""
    return "://" in str(location)


def _split_query(uri: str) -> tuple[str, str]:
    base, sep, query = uri.partition("?")
    return base.rstrip("/"), sep + query


def resolve(location: str | os.PathLike) -> str:
    """An absolute local path (`~` expanded), or the URI unchanged but for a trailing '/'."""
    if is_remote(location):
        base, query = _split_query(str(location))
        return base + query
    return str(Path(location).expanduser().resolve())


def join(location: str | os.PathLike, *parts: str) -> str:
    """`location/part/...`, with a URI's query string kept at the end."""
    if not is_remote(location):
        return str(Path(location, *parts))
    base, query = _split_query(str(location))
    return "/".join([base, *parts]) + query


def name(location: str | os.PathLike) -> str:
    """The last component of a path or URI."""
    if not is_remote(location):
        return Path(location).name
    return _split_query(str(location))[0].rsplit("/", 1)[-1]


def parent(location: str | os.PathLike) -> str:
    """The location one level up (for a URI, keeping its query)."""
    if not is_remote(location):
        return str(Path(location).parent)
    base, query = _split_query(str(location))
    head = base.rsplit("/", 1)[0]
    if head.endswith(":/"):
        raise DataError(f"{location}: a bucket has no parent; give a prefix inside it (s3://bucket/ray_results)")
    return head + query


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a location and the location's path on it.

    Raises:
        DataError: the URI's scheme or options are not understood by pyarrow.
    """
    if not is_remote(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return pafs.FileSystem.from_uri(str(location))
    except (ValueError, OSError) as err:
        raise DataError(f"{location}: not a storage location pyarrow can open ({err})") from None


def _info(location: str | os.PathLike) -> pafs.FileInfo:
    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path)
    except OSError as err:
        raise DataError(f"{location}: cannot be reached ({err})") from None


def exists(location: str | os.PathLike) -> bool:
    """Anything (a file, a directory, a FIFO, ...) is at the location."""
    return _info(location).type != pafs.FileType.NotFound


def is_file(location: str | os.PathLike) -> bool:
    return _info(location).type == pafs.FileType.File


def is_dir(location: str | os.PathLike) -> bool:
    """A local directory, or a URI prefix holding at least one object."""
    return _info(location).type == pafs.FileType.Directory


def file_sizes(locations: list[str]) -> list[int | None]:
    """The size in bytes of each of `locations` (all in one filesystem), None where it is not a
    file; one call to the filesystem."""
    if not locations:
        return []
    fs, _ = filesystem(locations[0])
    paths = [filesystem(loc)[1] for loc in locations]
    try:
        infos = fs.get_file_info(paths)
    except OSError as err:
        raise DataError(f"{locations[0]}: cannot be reached ({err})") from None
    return [info.size if info.type == pafs.FileType.File else None for info in infos]


def read_text(location: str | os.PathLike) -> str:
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read().decode()
    except OSError as err:
        raise DataError(f"{location}: cannot be read ({err})") from None


def write_text(location: str | os.PathLike, text: str) -> str:
    """Write a text file; never leaves a partial file under the final name.

    Locally through a renamed temporary file; in an object store the object appears only
    once its upload completes.
    """
    if not is_remote(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        return str(write_text_atomic(location, text))
    fs, path = filesystem(location)
    try:
        with fs.open_output_stream(path) as stream:
            stream.write(text.encode())
    except OSError as err:
        raise DataError(f"{location}: cannot be written ({err})") from None
    return str(location)


def arrow_paths(locations: list[str]) -> tuple[pafs.FileSystem | None, list[str]]:
    """(filesystem, paths) to hand to pyarrow or Ray Data readers for files that are all
    local or all in one store: (None, the paths) when local."""
    if not locations or not is_remote(locations[0]):
        return None, list(locations)
    fs, _ = filesystem(locations[0])
    return fs, [filesystem(loc)[1] for loc in locations]


def upload_dir(local_dir: str | os.PathLike, location: str) -> None:
    """Copy a local directory's files under a URI prefix."""
    fs, root = filesystem(location)
    local = Path(local_dir)
    try:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            with open(path, "rb") as src, fs.open_output_stream(f"{root}/{path.relative_to(local).as_posix()}") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    except OSError as err:
        raise DataError(f"{location}: upload failed ({err})") from None


def list_files(location: str | os.PathLike) -> list[str]:
    """The files under a directory or URI prefix, as '/'-separated paths relative to it."""
    fs, root = filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as err:
        raise DataError(f"{location}: cannot be listed ({err})") from None
    return sorted(info.path[len(root):].lstrip("/") for info in infos if info.type == pafs.FileType.File)


def replace_dir(local_dir: str | os.PathLike, location: str) -> None:
    """Make `location` (a directory or URI prefix) hold a copy of a local directory's files
    and nothing else."""
    if not is_remote(location):
        import shutil

        target = Path(location)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(local_dir, target)
        return
    fs, root = filesystem(location)
    try:
        fs.delete_dir_contents(root, missing_dir_ok=True)
    except OSError as err:
        raise DataError(f"{location}: cannot be cleared ({err})") from None
    upload_dir(local_dir, location)


def mirror(location: str, local_dir: str | os.PathLike) -> Path:
    """Copy the files under a URI prefix into `local_dir`, skipping those already there with
    the same size (so mirroring a running search again fetches only what is new). Files
    the store no longer has (checkpoints Tune deleted) are removed from the copies of its
    subdirectories.

    Raises:
        DataError: the prefix holds nothing, or cannot be read.
    """
    fs, root = filesystem(location)
    local = Path(local_dir)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as err:
        raise DataError(f"{location}: cannot be listed ({err})") from None
    files = {info.path[len(root):].lstrip("/"): info for info in infos if info.type == pafs.FileType.File}
    if not files:
        raise DataError(f"{location}: no such experiment or dataset (nothing stored under it)")
    try:
        for rel, info in files.items():
            target = local / rel
            if target.is_file() and target.stat().st_size == info.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with fs.open_input_stream(info.path) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            os.replace(tmp, target)
    except OSError as err:
        raise DataError(f"{location}: download failed ({err})") from None
    # Inside the stored directories (trials), drop what the store no longer has (checkpoints
    # Tune deleted); anything written next to them locally (a report) is left alone.
    stored_dirs = {rel.split("/", 1)[0] for rel in files if "/" in rel}
    for path in sorted(local.rglob("*"), reverse=True):
        rel = path.relative_to(local).as_posix()
        if rel.split("/", 1)[0] not in stored_dirs or "/" not in rel:
            continue
        if path.is_file() and rel not in files:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return local


def local_mirror_dir(location: str, cache: Path) -> Path:
    """Where `mirror` keeps a local copy of a URI: cache/mirrors/SCHEME/BUCKET/PREFIX."""
    scheme, _, rest = _split_query(location)[0].partition("://")
    return cache / "mirrors" / scheme / rest.lstrip("/")  # file:///a/b: never /a/b itself
