"""Plots of a search, from trial files alone (no Ray)."""

import json

import numpy as np
import pandas as pd

from raydream.core.errors import run_cli
from raydream.results.report import main, plot_pred_vs_measured, search_progress
from raydream.results.record import write_record
from test_results import fake_trial  # tests/ is on sys.path (pytest prepend import mode)


def test_search_progress_orders_trials_by_when_they_finished_and_keeps_the_best_so_far():
    table = pd.DataFrame({"trial": ["a", "b", "c"], "best_val_r2": [0.5, 0.3, 0.1], "epochs": [4, 1, 2]})
    history = {name: pd.DataFrame({"epoch": [1], "val_r2": [0.0], "timestamp": [t]})
               for name, t in [("a", 30), ("b", 10), ("c", 20)]}
    progress = search_progress(table, history)
    assert progress["trial"].tolist() == ["b", "c", "a"]
    assert progress["cumulative_epochs"].tolist() == [1, 3, 7]
    assert progress["best_so_far"].tolist() == [0.3, 0.3, 0.5]
    by_mse = search_progress(table.rename(columns={"best_val_r2": "best_val_mse"}), history, "val_mse")
    assert by_mse["best_so_far"].tolist() == [0.3, 0.1, 0.1]  # lower is better


def test_a_search_ranked_by_mse_plots_its_mse(tmp_path):
    write_record(tmp_path, {"sampled_keys": ["train.lr"], "max_epochs": 2, "metric": "val_mse"})
    for i in range(2):
        fake_trial(tmp_path, f"run_{i}", {"train": {"lr": 10.0 ** -(i + 2)}}, [0.1, 0.2 + i])
    assert main([str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
    assert all(_is_png(tmp_path / "plots" / f"{n}.png") for n in ["learning_curves", "best_so_far", "hyperparameters"])


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli_writes_the_search_plots(tmp_path, capsys):
    write_record(tmp_path, {"sampled_keys": ["train.lr", "train.loss"], "max_epochs": 3})
    for i, (r2s, loss) in enumerate([([0.1, 0.3, 0.35], "mse"), ([0.05], "huber"), ([0.2, 0.25, 0.2], "mse")]):
        fake_trial(tmp_path, f"run_{i}", {"train": {"lr": 10.0 ** -(i + 2), "loss": loss}}, r2s,
                   checkpoint_epochs=[len(r2s)])
    out = tmp_path / "plots"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ["learning_curves", "best_so_far", "hyperparameters"]:
        assert _is_png(out / f"{name}.png"), name
    # No data directory recorded: the prediction plot is skipped with a message, not an error.
    assert "skipped pred_vs_measured.png" in printed and not (out / "pred_vs_measured.png").exists()
    assert not list(out.glob("*.tmp"))


def test_report_cli_errors_name_the_experiment(tmp_path, capsys):
    assert run_cli(main, [str(tmp_path / "missing")]) == 2
    assert "not a raydream experiment directory" in capsys.readouterr().err
    write_record(tmp_path, {"sampled_keys": [], "max_epochs": 1, "data": str(tmp_path)})
    (tmp_path / "run_0").mkdir()
    (tmp_path / "run_0" / "params.json").write_text(json.dumps({"train": {}}))
    assert run_cli(main, [str(tmp_path)]) == 2
    assert "no trial has reported a validation score yet" in capsys.readouterr().err


def test_prediction_plot_survives_constant_predictions(tmp_path):
    measured = np.random.default_rng(0).normal(10, 2, 300)
    path = plot_pred_vs_measured(measured, measured * 0.5 + 5, "t", tmp_path / "a.png")
    assert _is_png(path)
    # Constant predictions have no correlation (NaN) and no 2-D density, but still plot.
    assert _is_png(plot_pred_vs_measured(measured, np.full(300, 10.0), "t", tmp_path / "b.png"))


def test_a_moved_dataset_is_named_and_found_again_with_data(experiment, dream_file, tmp_path, capsys):
    from raydream.data.prepare import prepare_dataset

    moved = tmp_path / "moved"
    prepare_dataset(dream_file, moved)
    info = json.loads((experiment / "raydream_search.json").read_text())
    write_record(experiment, {**info, "data": str(tmp_path / "gone")})
    assert run_cli(main, [str(experiment)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {experiment}: the search's dataset cannot be read where it was recorded (")
    assert err.rstrip().endswith("give where it is now with --data DIR") and not (experiment / "report").exists()
    assert main([str(experiment), "--data", str(moved)]) == 0
    assert _is_png(experiment / "report" / "pred_vs_measured.png")
