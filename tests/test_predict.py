"""`python -m raydream.predict` on checkpoints written without Ray."""

import json

import numpy as np
import pandas as pd
import pytest

from raydream.results.inference import predict
from raydream.core.errors import run_cli
from raydream.results.predict import main, read_sequences

from conftest import random_promoters, write_dream


def test_best_trial_and_top_k_ensemble_predictions(experiment, tmp_path):
    seqs = random_promoters(12, seed=7)
    plain = tmp_path / "seqs.txt"
    plain.write_text("\n".join(s.lower() for s in seqs) + "\n")
    assert main(["--experiment", str(experiment), "--input", str(plain), "--output", str(tmp_path / "p.tsv")]) == 0
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    best = predict(experiment / "trial_1" / "checkpoint_000000", np.array(seqs, dtype=object))
    assert table["sequence"].tolist() == seqs and np.allclose(table["prediction"], best, rtol=1e-5)

    dream = write_dream(tmp_path / "test.txt", seqs, np.arange(12.0))
    assert main(["--experiment", str(experiment), "--top-k", "2", "--input", str(dream),
                 "--output", str(tmp_path / "p.json")]) == 0
    second = predict(experiment / "trial_2" / "checkpoint_000000", np.array(seqs, dtype=object))
    submitted = json.loads((tmp_path / "p.json").read_text())
    assert list(submitted) == [str(i) for i in range(12)]
    assert np.allclose([submitted[str(i)] for i in range(12)], (best + second) / 2)


def test_an_experiment_in_a_bucket_predicts_as_its_local_copy(experiment, tmp_path, s3_uri):
    from raydream.core import storage

    remote = storage.join(s3_uri, "results", "exp")
    storage.upload_dir(experiment, remote)
    plain = tmp_path / "seqs.txt"
    plain.write_text("\n".join(random_promoters(5, seed=2)) + "\n")
    for source, out in ((str(experiment), "local.tsv"), (remote, "remote.tsv")):
        assert main(["--experiment", source, "--top-k", "2", "--input", str(plain), "--output", str(tmp_path / out)]) == 0
    assert (tmp_path / "local.tsv").read_text() == (tmp_path / "remote.tsv").read_text()


def test_bad_inputs_and_requests_are_one_error_line(experiment, tmp_path, capsys):
    promoter = random_promoters(1, seed=3)[0]
    out = str(tmp_path / "p.tsv")
    # one-per-line input is validated as a DREAM file's sequences are
    for name, lines, words in [("bad.txt", [promoter, promoter[:-1] + "X"], "line 2: sequence has characters other "
                                                                              "than A/C/G/T/N: 'X'"),
                               ("short.txt", ["ACGTA"], "line 1: sequence length 5 is outside the allowed 80-150 bp"),
                               ("long.txt", [promoter, "A" * 10_000], "line 2: sequence length 10000 is outside")]:
        bad = tmp_path / name
        bad.write_text("\n".join(lines) + "\n")
        assert run_cli(main, ["--experiment", str(experiment), "--input", str(bad), "--output", out]) == 2
        assert f"{bad}, {words}" in capsys.readouterr().err
    good = tmp_path / "good.txt"
    good.write_text(promoter + "\n")
    assert run_cli(main, ["--experiment", str(experiment), "--input", str(good), "--output", str(good)]) == 2
    assert f"--output {good}: is the input {good}" in capsys.readouterr().err
    assert good.read_text() == promoter + "\n"  # never written over
    assert run_cli(main, ["--experiment", str(experiment), "--top-k", "4", "--input", str(good), "--output", out]) == 2
    assert "3 trial(s) with a checkpoint, fewer than --top-k 4" in capsys.readouterr().err
    assert run_cli(main, ["--checkpoint", str(tmp_path / "nope"), "--input", str(good), "--output", out]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "p.tsv").exists()


def test_empty_sequence_file_is_an_error(tmp_path):
    from raydream.core.errors import DataError

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="file is empty"):
        read_sequences(empty)


def test_the_python_api_loads_a_model_once_and_predicts_as_the_command_does(experiment, tmp_path):
    import raydream
    from raydream.core.errors import ConfigError, DataError

    seqs = random_promoters(9, seed=5)
    best = experiment / "trial_1" / "checkpoint_000000"
    model = raydream.load_model(best, device="cpu")
    assert model.name == "resnet" and model.meta["metrics"]["val_r2"] == 0.5 and str(model.device) == "cpu"
    once = model.predict(seqs)
    assert once.dtype == np.float64 and once.shape == (9,)
    assert np.array_equal(model.predict([s.lower() for s in seqs], batch_size=2), once)  # batches, case
    plain = tmp_path / "seqs.txt"
    plain.write_text("\n".join(seqs) + "\n")
    assert main(["--checkpoint", str(best), "--input", str(plain), "--output", str(tmp_path / "p.tsv")]) == 0
    assert np.allclose(pd.read_csv(tmp_path / "p.tsv", sep="\t")["prediction"], once, rtol=1e-5)
    # several models: their mean; loaded models and checkpoint paths mix
    other = experiment / "trial_2" / "checkpoint_000000"
    assert np.allclose(raydream.predict([model, other], seqs), (once + raydream.predict(other, seqs)) / 2)
    # `import raydream.predict` (the command's module) leaves raydream.predict callable
    import raydream.predict as command  # noqa: F401

    assert np.array_equal(raydream.predict(model, seqs), once)
    with pytest.raises(DataError, match=r"^sequence 1: sequence has characters other than A/C/G/T/N: 'X'"):
        model.predict([seqs[0], seqs[1][:-1] + "X"])
    with pytest.raises(DataError, match="a single string; wrap it in a list"):
        model.predict(seqs[0])
    with pytest.raises(DataError, match="no sequences to predict"):
        raydream.predict(best, [])
    with pytest.raises(ConfigError, match="'tpu' is not a torch device"):
        raydream.load_model(best, device="tpu")
    if not torch_cuda():
        with pytest.raises(ConfigError, match="no CUDA GPU that torch can use"):
            raydream.load_model(best, device="cuda")
        assert run_cli(main, ["--checkpoint", str(best), "--input", str(plain), "--output", str(tmp_path / "q.tsv"),
                              "--device", "cuda"]) == 2
        assert not (tmp_path / "q.tsv").exists()


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
def test_a_model_loaded_onto_the_gpu_predicts_as_on_the_cpu(experiment):
    import torch

    import raydream

    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    seqs = random_promoters(40, seed=6)
    best = experiment / "trial_1" / "checkpoint_000000"
    on_gpu = raydream.load_model(best, device="cuda")
    assert next(on_gpu.module.parameters()).device.type == "cuda"
    assert np.allclose(on_gpu.predict(seqs), raydream.predict(best, seqs), atol=1e-4)
