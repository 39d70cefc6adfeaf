import math

import pandas as pd

from raydream.results import TrialRecord, format_table, rank_trials


def history(r2s, ckpt_prefix):
    return pd.DataFrame({
        "epoch": range(1, len(r2s) + 1),
        "val_r2": r2s,
        "val_pearson": [0.5] * len(r2s),
        "val_spearman": [0.4] * len(r2s),
        "val_mse": [3.0] * len(r2s),
        "checkpoint_path": [f"{ckpt_prefix}/e{i}" for i in range(1, len(r2s) + 1)],
    })


def test_rank_trials_orders_by_best_r2_and_labels_status():
    records = [
        TrialRecord("a", {"train": {"lr": 0.1}, "model_config": {"channels": 8}}, history([0.1, 0.3, 0.2, 0.25], "/a")),
        TrialRecord("b", {"train": {"lr": 0.2}, "model_config": {"channels": 16}}, history([0.35, 0.33], "/b")),
        TrialRecord("c", {"train": {"lr": 0.3}, "model_config": {"channels": 32}}, None, error="Traceback\nValueError: boom"),
    ]
    table = rank_trials(records, ["model_config.channels", "train.lr"], max_epochs=4)
    assert list(table["trial"]) == ["b", "a", "c"]
    assert list(table["rank"]) == [1, 2, 3]
    assert list(table.columns[:4]) == ["rank", "trial", "channels", "lr"]
    a = table.set_index("trial").loc["a"]
    assert a["best_val_r2"] == 0.3 and a["best_epoch"] == 2 and a["epochs"] == 4
    assert a["status"] == "completed" and a["checkpoint"] == "/a/e2"
    assert table.set_index("trial").loc["b", "status"] == "stopped early"
    c = table.set_index("trial").loc["c"]
    assert math.isnan(c["best_val_r2"]) and c["status"] == "error: ValueError: boom"
    text = format_table(table)
    assert "checkpoint" not in text and "stopped early" in text


def test_colliding_short_names_keep_their_section():
    records = [TrialRecord("a", {"train": {"seed": 1}, "model_config": {"seed": 2}}, history([0.1], "/a"))]
    table = rank_trials(records, ["model_config.seed", "train.seed"], max_epochs=1)
    assert {"model_config.seed", "train.seed"} <= set(table.columns)
