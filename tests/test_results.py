import math

import pandas as pd

from raydream.results.table import TrialRecord, format_table, rank_trials


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


def test_a_metric_picks_each_trials_best_epoch_and_its_direction_ranks_the_trials():
    a = history([0.1, 0.3], "/a").assign(val_mse=[2.0, 1.0], val_pearson=[0.7, 0.5])
    b = history([0.2, 0.25], "/b").assign(val_mse=[1.5, 1.8], val_pearson=[0.6, 0.65])
    records = [TrialRecord("a", {}, a), TrialRecord("b", {}, b)]
    by_mse = rank_trials(records, [], max_epochs=2, metric="val_mse")
    assert list(by_mse["trial"]) == ["a", "b"] and list(by_mse["best_val_mse"]) == [1.0, 1.5]
    assert list(by_mse["best_epoch"]) == [2, 1] and list(by_mse["val_r2"]) == [0.3, 0.2]
    assert list(by_mse.columns[:5]) == ["rank", "trial", "best_val_mse", "best_epoch", "val_r2"]
    assert "val_mse" not in by_mse.columns and "best_val_r2" not in by_mse.columns
    by_pearson = rank_trials(records, [], max_epochs=2, metric="val_pearson")
    assert list(by_pearson["trial"]) == ["a", "b"] and list(by_pearson["best_epoch"]) == [1, 2]
    assert list(by_pearson["checkpoint"]) == ["/a/e1", "/b/e2"]


def test_baselines_are_rows_of_the_ranked_table_placed_by_their_validation_score():
    from raydream.results.table import with_baselines

    records = [TrialRecord(t, {"train": {"lr": lr}}, history([r2], f"/{t}")) for t, lr, r2 in
               [("a", 0.1, 0.4), ("b", 0.2, 0.1), ("c", 0.3, float("nan"))]]
    table = rank_trials(records, ["train.lr"], max_epochs=1)
    record = {"fit_rows": 10, "val_rows": 5, "test_rows": 5, "baselines": {
        "training mean": {"val": {"r2": -0.01, "pearson": None, "spearman": None, "mse": 5.0}, "test": None},
        "k-mer ridge": {"val": {"r2": 0.3, "pearson": 0.55, "spearman": 0.5, "mse": 2.0}, "test": None,
                        "alpha": 10.0, "ks": [1, 2]}}}
    shown = with_baselines(table, record)
    assert list(shown["trial"]) == ["a", "k-mer ridge", "b", "training mean", "c"]
    assert list(shown["status"])[1] == "baseline" and list(shown["rank"]) == [1, None, 2, None, 3]
    lines = format_table(shown).splitlines()
    assert lines[2].split() == ["-", "k-mer", "ridge", "-", "0.3", "-", "0.55", "0.5", "2", "-", "baseline"]
    assert lines[4].split()[:7] == ["-", "training", "mean", "-", "-0.01", "-", "-"]
    assert with_baselines(table, None) is table
    # sorted by another column, the rows keep that order and the baselines go where their value does
    by_mse = with_baselines(table.sort_values("val_mse"), record, sort="val_mse")
    assert list(by_mse["trial"])[-2:] == ["training mean", "c"]


def fake_trial(root, name, config, r2s, checkpoint_epochs=(), tune_checkpoints=(), error=None):
    """A trial directory as Tune leaves it. checkpoint_epochs: checkpoints found only by their
    meta.json (older experiments); tune_checkpoints: epochs whose checkpoint Tune names in
    progress.csv's checkpoint_dir_name and kept."""
    import json

    trial = root / name
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(config))
    frame = history(r2s, str(trial / "train"))
    frame["trial_id"] = name.split("_")[-1]
    frame = frame.drop(columns=["checkpoint_path"])
    if tune_checkpoints:
        frame["checkpoint_dir_name"] = [f"checkpoint_{e - 1:06d}" for e in frame["epoch"]]
        for epoch in tune_checkpoints:
            (trial / f"checkpoint_{epoch - 1:06d}").mkdir()
    frame.to_csv(trial / "progress.csv", index=False)
    for epoch in checkpoint_epochs:
        ckpt = trial / f"checkpoint_{epoch:06d}"
        ckpt.mkdir()
        (ckpt / "meta.json").write_text(json.dumps({"epoch": epoch}))
    if error:
        (trial / "error.txt").write_text(error)
    return trial


def test_experiment_table_reads_trial_files_without_ray(tmp_path):
    from raydream.results.record import write_record
    from raydream.results.table import experiment_table

    write_record(tmp_path, {"sampled_keys": ["train.lr"], "max_epochs": 3})
    a = fake_trial(tmp_path, "run_a_00000", {"train": {"lr": 0.1, "max_epochs": 3}}, [0.1, 0.4, 0.3],
                   checkpoint_epochs=[2])
    b = fake_trial(tmp_path, "run_b_00001", {"train": {"lr": 0.2, "max_epochs": 3}}, [0.2, 0.1], tune_checkpoints=[1])
    (tmp_path / "run_c_00002").mkdir()
    (tmp_path / "run_c_00002" / "params.json").write_text('{"train": {"lr": 0.3}}')
    (tmp_path / "run_c_00002" / "error.txt").write_text("Traceback\nRuntimeError: worker died")
    table = experiment_table(tmp_path)
    assert list(table["trial"]) == ["00000", "00001", "run_c_00002"]
    assert list(table["status"]) == ["completed", "stopped early", "error: RuntimeError: worker died"]
    assert table.loc[0, "checkpoint"] == str(a / "checkpoint_000002")  # found through its meta.json
    assert table.loc[1, "checkpoint"] == str(b / "checkpoint_000000")  # named by Tune in progress.csv
    assert list(table.columns[:3]) == ["rank", "trial", "lr"]


def test_epochs_run_again_after_a_restore_count_once_as_last_reported(tmp_path):
    """A trial stopped after reporting epoch 2 but before Tune saved its checkpoint, then
    resumed from epoch 1's checkpoint, has two rows for epoch 2 in progress.csv: the rerun's wins."""
    import json

    from raydream.results.table import read_trial

    trial = tmp_path / "t_1"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"train": {"lr": 0.1, "max_epochs": 3}}))
    pd.DataFrame({"epoch": [1, 2, 2, 3], "val_r2": [0.1, 0.9, 0.2, 0.3], "trial_id": "1",
                  "checkpoint_dir_name": ["checkpoint_000000", None, "checkpoint_000001", "checkpoint_000002"]}
                 ).to_csv(trial / "progress.csv", index=False)
    for i in range(3):
        (trial / f"checkpoint_{i:06d}").mkdir()
    history = read_trial(trial).history
    assert history["epoch"].tolist() == [1, 2, 3] and history["val_r2"].tolist() == [0.1, 0.2, 0.3]
    table = rank_trials([read_trial(trial)], ["train.lr"], max_epochs=3)
    assert table.loc[0, "best_val_r2"] == 0.3 and table.loc[0, "checkpoint"] == str(trial / "checkpoint_000002")


def test_without_a_search_file_the_varying_keys_are_shown(tmp_path):
    from raydream.results.table import experiment_table

    fake_trial(tmp_path, "t_1", {"train": {"lr": 0.1, "seed": 0, "max_epochs": 2}}, [0.1, 0.2])
    fake_trial(tmp_path, "t_2", {"train": {"lr": 0.2, "seed": 0, "max_epochs": 2}}, [0.3])
    table = experiment_table(tmp_path)
    assert "lr" in table.columns and "seed" not in table.columns
    assert list(table["status"]) == ["stopped early", "completed"]


def test_results_cli_top_columns_sort_and_exports(tmp_path, capsys):
    from raydream.core.errors import run_cli
    from raydream.results.record import write_record
    from raydream.results.table import main

    write_record(tmp_path, {"sampled_keys": ["train.lr"], "max_epochs": 2})
    for i, r2s in enumerate([[0.1, 0.2], [0.5, 0.4], [0.3, 0.35]]):
        fake_trial(tmp_path, f"run_{i}", {"train": {"lr": 0.1 * (i + 1)}}, r2s, checkpoint_epochs=[1])
    md, csv = tmp_path / "t.md", tmp_path / "t.csv"
    assert main([str(tmp_path), "--top", "2", "--columns", "trial,lr,best_val_r2", "--markdown", str(md),
                 "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["trial", "lr", "best_val_r2"] and len(out.splitlines()) == 3
    assert md.read_text().splitlines()[:2] == ["| trial | lr | best_val_r2 |", "| --- | --- | --- |"]
    assert len(pd.read_csv(csv)) == 2 and "checkpoint" in pd.read_csv(csv).columns
    assert run_cli(main, [str(tmp_path), "--sort", "nope"]) == 2
    assert "--sort: no column 'nope'" in capsys.readouterr().err
    assert run_cli(main, [str(tmp_path / "missing")]) == 2
    assert "not a raydream experiment directory" in capsys.readouterr().err


def test_results_cli_ranks_by_the_searchs_metric_and_shows_its_baselines(tmp_path, capsys):
    import json

    from raydream.core.errors import run_cli
    from raydream.results.record import write_record
    from raydream.results.table import BASELINES_FILE, main

    write_record(tmp_path, {"sampled_keys": ["train.lr"], "max_epochs": 2, "metric": "val_mse"})
    for i, mse in enumerate([[3.0, 2.5], [1.0, 4.0]]):
        fake_trial(tmp_path, f"run_{i}", {"train": {"lr": 0.1 * (i + 1)}}, [0.1, 0.2])
        frame = pd.read_csv(tmp_path / f"run_{i}" / "progress.csv").assign(val_mse=mse)
        frame.to_csv(tmp_path / f"run_{i}" / "progress.csv", index=False)
    (tmp_path / BASELINES_FILE).write_text(json.dumps({"fit_rows": 9, "val_rows": 3, "test_rows": 0, "baselines": {
        "k-mer ridge": {"val": {"r2": 0.2, "pearson": 0.5, "spearman": 0.5, "mse": 2.0}, "test": None,
                        "alpha": 1.0, "ks": [1]}}}))
    assert main([str(tmp_path), "--columns", "trial,best_val_mse,status"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:4]]
    assert rows == ["1", "k-mer", "0"]  # trial ids; MSE 1.0, the ridge's 2.0, then 2.5
    write_record(tmp_path, {"sampled_keys": ["train.lr"], "max_epochs": 2, "metric": "r2"})
    assert run_cli(main, [str(tmp_path)]) == 2
    assert "metric 'r2' is not one of val_r2, val_pearson, val_spearman, val_mse" in capsys.readouterr().err


def test_tune_state_marks_interrupted_and_retried_trials_and_the_recorded_space_resolves_configs(tmp_path):
    import json

    from raydream.results.record import write_record
    from raydream.results.table import experiment_table
    from raydream.tuning.space import parse_space

    space = "model: cls_cnn\ntrain:\n  loss: {choice: [cross_entropy, soft_kl]}\n" \
            "  soft_label_sd: {uniform: [0.3, 1.0], when: {loss: soft_kl}}\n"
    # The search records how its space resolves a trial's config; the table applies it.
    write_record(tmp_path, {"sampled_keys": ["train.loss", "train.soft_label_sd"], "max_epochs": 3,
                            "space": "s.yaml", "space_yaml": space,
                            "resolution": parse_space(space, "s.yaml").resolution()})
    a = fake_trial(tmp_path, "run_a", {"model": "cls_cnn", "train": {"loss": "soft_kl", "soft_label_sd": 0.5}},
                   [0.1, 0.2])
    b = fake_trial(tmp_path, "run_b", {"model": "cls_cnn", "train": {"loss": "cross_entropy", "soft_label_sd": 0.7}},
                   [0.3, 0.3, 0.3])

    def entry(trial, status, failures):
        return [json.dumps({"relative_logdir": trial.name, "status": status}), json.dumps({"num_failures": failures})]

    # Two state files: the later one (by the time in its name) is the one read.
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [entry(a, "TERMINATED", 0), entry(b, "TERMINATED", 0)]}))
    (tmp_path / "experiment_state-2026-01-02_00-00-00.json").write_text(
        json.dumps({"trial_data": [entry(a, "RUNNING", 0), entry(b, "TERMINATED", 1)]}))
    table = experiment_table(tmp_path).set_index("trial")
    assert table.loc["a", "status"] == "interrupted" and table.loc["b", "status"] == "completed"
    assert table.loc["b", "failures"] == 1 and table.loc["a", "failures"] == 0
    assert table.loc["a", "soft_label_sd"] == 0.5 and pd.isna(table.loc["b", "soft_label_sd"])  # unused with cross_entropy
