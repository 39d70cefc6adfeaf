"""Shared fixtures: CPU/CUDA device, tiny seeded DREAM files, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# raydream runs Ray Train V2 (python -m raydream.tune sets this too); tests that build a
# trainer in this process need it before anything imports ray.train.
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
# Object-store tests talk to a local moto S3 server (see `s3_uri`). These fake credentials are
# set before any Ray node starts, so Ray's workers, which inherit this environment, use them.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")

LEFT_FLANK = "TGCATTTTTTTCACATC"
RIGHT_FLANK = "GGTTACGGCTGTT"


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> torch.device:
    """Every test using this runs on CPU, and on CUDA when a GPU is present."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return torch.device(request.param)


def random_promoters(n: int, seed: int = 0) -> list[str]:
    """n DREAM-like 110 bp sequences: real flanks around an 80 bp random region."""
    rng = np.random.default_rng(seed)
    core = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=(n, 80))]
    return [LEFT_FLANK + row.tobytes().decode() + RIGHT_FLANK for row in core]


def write_dream(path: Path, seqs: list[str], values) -> Path:
    path.write_text("".join(f"{s}\t{v}\n" for s, v in zip(seqs, values)))
    return path


@pytest.fixture
def dream_file(tmp_path: Path) -> Path:
    """A valid 200-row DREAM file."""
    seqs = random_promoters(200)
    values = np.round(np.random.default_rng(1).uniform(0, 17, size=200), 3)
    return write_dream(tmp_path / "toy.txt", seqs, values)


@pytest.fixture
def experiment(tmp_path) -> Path:
    """A search directory (no Ray) with three resnet trials of different quality and a
    checkpoint each; trial_1 is the best."""
    import json

    import pandas as pd

    from raydream.train.checkpoint import save_checkpoint
    from raydream.models import create_model, model_config
    from raydream.results.record import write_record
    from raydream.train.config import TrainConfig

    exp = tmp_path / "exp"
    write_record(exp, {"sampled_keys": ["train.seed"], "max_epochs": 1})
    cfg = model_config("resnet", {"channels": 8, "num_blocks": 1})
    for i, r2 in enumerate([0.2, 0.5, 0.3]):
        trial = exp / f"trial_{i}"
        ckpt = trial / "checkpoint_000000"
        torch.manual_seed(i)
        save_checkpoint(ckpt, create_model("resnet", cfg).eval(), "resnet", cfg, TrainConfig(seed=i), 1, {"val_r2": r2})
        (trial / "params.json").write_text(json.dumps({"train": {"seed": i}}))
        pd.DataFrame({"epoch": [1], "val_r2": [r2], "trial_id": [f"t{i}"]}).to_csv(trial / "progress.csv", index=False)
    return exp


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch) -> Path:
    """Prepared-data cache in a per-session temporary directory, never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "raydream-cache"
    monkeypatch.setenv("RAYDREAM_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on a free local port for the whole session: 'http://127.0.0.1:PORT'."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_endpoint, request) -> str:
    """A new, empty bucket as the URI a user would give: 's3://BUCKET?endpoint_override=...'."""
    import pyarrow.fs as pafs

    bucket = "raydream-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    pafs.S3FileSystem(endpoint_override=s3_endpoint, region="us-east-1", allow_bucket_creation=True).create_dir(bucket)
    return f"s3://{bucket}?endpoint_override={s3_endpoint}&region=us-east-1"
