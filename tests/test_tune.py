"""The search entry point: resource planning, param spaces, and real Ray searches."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from raydream.train.checkpoint import restore_model
from raydream.core.errors import ConfigError, run_cli
from raydream.tuning.space import load_space
from raydream.tuning.plan import build_param_space, check_torch_backend, plan_resources
from raydream.tuning.tuner import main


def test_a_trial_reserves_its_workers_and_a_cpu_each_for_their_ray_data_reads():
    plan = plan_resources({"CPU": 2}, num_workers=1, cpus_per_worker=1)
    assert plan.max_concurrent == 1 and plan.cpus_per_trial == 2 and plan.data_cpus_per_trial == 1
    plan = plan_resources({"CPU": 16, "GPU": 2}, num_workers=2, cpus_per_worker=2, gpus_per_worker=1)
    assert plan.max_concurrent == 1 and plan.gpus_per_trial == 2  # GPUs bound it: 2 GPUs per trial
    assert "6 CPU + 2 GPU for Train workers (2 of the CPUs for their Ray Data reads)" in plan.describe()
    assert plan_resources({"CPU": 16, "GPU": 1}, 1, 1, gpus_per_worker=0.25).max_concurrent == 4  # shared GPU
    assert plan_resources({"CPU": 16}, 2, 2).max_concurrent == 16 // (2 * (2 + 1))
    assert plan_resources({"CPU": 16}, 2, 2, max_concurrent=2).max_concurrent == 2
    assert plan_resources({"CPU": 2}, 1, 1, max_concurrent=5).max_concurrent == 1  # never more than fit
    # a random forest reads its data itself: it holds its own CPUs only
    forest = plan_resources({"CPU": 2}, 1, 1, train_run=False)
    assert forest.cpus_per_trial == 1 and forest.max_concurrent == 2 and "the trial process" in forest.describe(False)


def test_one_worker_network_trials_hold_their_resources_and_other_trials_leave_them_to_train_workers(tmp_path):
    # Ray Train local mode: a one-worker network trial runs its worker's loop itself, so the
    # trial holds the worker's CPUs and GPUs; LightGBM's and several workers' runs start
    # Train workers, which reserve them, while the trial holds a sliver of TRIAL_DRIVER.
    from ray.tune.search.variant_generator import generate_variants

    from raydream.train.loop import TrialSetup
    from raydream.train.trial import trainable

    def request(space, setup, config=None):
        return trainable(space, setup, 2).default_resource_request(config or {}).required_resources

    setup = TrialSetup(str(tmp_path), str(tmp_path), local_mode=True)
    assert request(load_space("resnet"), setup) == {"CPU": 2}
    gpu = TrialSetup(str(tmp_path), str(tmp_path), gpus_per_worker=0.5, local_mode=True)
    assert request(load_space("legnet"), gpu) == {"CPU": 2, "GPU": 0.5}
    assert request(load_space("lightgbm"), setup) == {"TRIAL_DRIVER": 0.01}
    assert request(load_space("resnet"), TrialSetup(str(tmp_path), str(tmp_path), num_workers=2, local_mode=True)) == {
        "TRIAL_DRIVER": 0.01}
    assert request(load_space("resnet"), TrialSetup(str(tmp_path), str(tmp_path))) == {"TRIAL_DRIVER": 0.01}
    # a search across families: each trial as its drawn family trains
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  small: {model: resnet, model_config: {channels: {choice: [8, 16]}}}\n"
                        "  trees: {model: lightgbm, model_config: {num_leaves: {choice: [15, 31]}}}\n")
    space = load_space(str(families))
    for family, expected in [("small", {"CPU": 2}), ("trees", {"TRIAL_DRIVER": 0.01})]:
        param_space = {**build_param_space(space, {}), "family": family}
        config = next(generate_variants(param_space))[1]  # as Tune draws one
        assert request(space, setup, config) == expected
    # Ray's dashboard starts (for Train's clean-up of a dead trial's workers) only when some
    # trial starts Train workers, unless asked for with --dashboard
    from raydream.tuning.tuner import local_mode_only

    assert local_mode_only(load_space("resnet"), 1) and local_mode_only(load_space("random_forest"), 1)
    assert not local_mode_only(load_space("resnet"), 2) and not local_mode_only(load_space("lightgbm"), 1)
    assert not local_mode_only(space, 1)  # the families above: LightGBM's trials start Train workers
    local = plan_resources({"CPU": 2}, 1, 1).describe(local=True)
    assert "2 CPU for the trial's process, in Ray Train local mode (1 CPU for Ray Data reads)" in local


def test_plan_resources_refuses_a_trial_that_can_never_start():
    with pytest.raises(ConfigError, match=r"needs 2 worker\(s\) x 1 CPU \+ 2 for Ray Data = 4 CPU, but the cluster has 2 CPU"):
        plan_resources({"CPU": 2}, num_workers=2, cpus_per_worker=1)
    with pytest.raises(ConfigError, match="2 worker\\(s\\) x 1 GPU = 2 GPU, but the cluster has 1 GPU"):
        plan_resources({"CPU": 8, "GPU": 1}, num_workers=2, cpus_per_worker=1, gpus_per_worker=1)
    with pytest.raises(ConfigError, match="two workers of a trial could share one GPU.*add --torch-backend gloo"):
        plan_resources({"CPU": 8, "GPU": 2}, num_workers=2, cpus_per_worker=1, gpus_per_worker=0.5)
    for shape, words in [((0, 1), "--num-workers must be >= 1, got 0"), ((1, 0), "--cpus-per-worker must be >= 1"),
                         ((1, 1, float("nan")), "--gpus-per-worker must be a number >= 0, got nan")]:
        with pytest.raises(ConfigError, match=words):
            plan_resources({"CPU": 64}, *shape)


def test_gloo_lets_the_workers_of_a_trial_share_a_gpu_and_nccl_needs_gpus():
    shared = plan_resources({"CPU": 16, "GPU": 1}, num_workers=2, cpus_per_worker=1, gpus_per_worker=0.5,
                            torch_backend="gloo")
    assert shared.gpus_per_trial == 1 and shared.max_concurrent == 1
    check_torch_backend("nccl", 1.0)
    check_torch_backend("gloo", 0.0)
    check_torch_backend(None, 0.0)
    with pytest.raises(ConfigError, match="--torch-backend nccl needs GPU workers"):
        check_torch_backend("nccl", 0.0)


def test_torch_backend_is_refused_for_trees_and_nccl_on_a_machine_without_gpus(capsys):
    assert run_cli(main, ["--space", "lightgbm", "--torch-backend", "gloo"]) == 2
    assert "--precision, --gpus-per-worker and --torch-backend are for networks" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert run_cli(main, ["--space", "resnet", "--torch-backend", "nccl"]) == 2
        assert "--torch-backend nccl needs GPU workers" in capsys.readouterr().err


def test_an_autoscaling_cluster_takes_trials_that_fit_only_once_nodes_are_added():
    cpu_head = {"CPU": 8, "TRIAL_DRIVER": 1000}  # cluster.yaml's head, before any GPU worker starts
    with pytest.raises(ConfigError, match="has 0 GPU now; .* --max-concurrent N"):
        plan_resources(cpu_head, 1, 1, gpus_per_worker=1, autoscaling=True)
    plan = plan_resources(cpu_head, 1, 1, gpus_per_worker=1, max_concurrent=4, autoscaling=True)
    assert plan.waits_for_nodes and plan.max_concurrent == 4
    assert plan.describe().endswith("up to 4 trial(s) at a time as its autoscaler adds nodes")
    # a trial that fits now may still run more at once than fit now
    assert plan_resources({"CPU": 4, "GPU": 1}, 1, 1, 1, max_concurrent=4, autoscaling=True).max_concurrent == 4


def test_gpus_default_to_one_per_network_worker_when_the_cluster_has_them():
    from raydream.tuning.plan import worker_gpus

    assert worker_gpus(None, network=True, cluster={"CPU": 8, "GPU": 2}) == 1
    assert worker_gpus(None, network=True, cluster={"CPU": 8}) == 0
    assert worker_gpus(None, network=False, cluster={"CPU": 8, "GPU": 2}) == 0
    assert worker_gpus(0.5, network=True, cluster={"CPU": 8}) == 0.5  # asked for: the cluster may add GPUs
    with pytest.raises(ConfigError, match="tree models .* train on CPUs"):
        worker_gpus(1, network=False, cluster={"CPU": 8, "GPU": 1})


def test_fp16_is_refused_for_trials_without_gpus():
    from raydream.tuning.plan import check_precision

    space = load_space("resnet")
    check_precision(space, {"precision": "bf16"}, gpus_per_worker=0)
    check_precision(space, {"precision": "fp16"}, gpus_per_worker=1)
    with pytest.raises(ConfigError, match="precision fp16 needs GPUs"):
        check_precision(space, {"precision": "fp16"}, gpus_per_worker=0)
    with pytest.raises(ConfigError, match="--precision, --gpus-per-worker and --torch-backend are for networks"):
        main(["--space", "lightgbm", "--precision", "bf16"])


def test_asha_notes_say_when_asha_cannot_stop_anything():
    from raydream.tuning.plan import asha_notes

    assert asha_notes(num_samples=8, max_epochs=8, grace_period=2, reduction_factor=2) == []
    (note,) = asha_notes(num_samples=8, max_epochs=2, grace_period=2, reduction_factor=2)
    assert "grace period (2 epoch(s)) reaches the last epoch (2)" in note
    (note,) = asha_notes(num_samples=2, max_epochs=8, grace_period=1, reduction_factor=3)
    assert "with 2 trial(s) it stops none" in note


def test_search_record_round_trips_and_names_what_changed_in_a_space(tmp_path):
    from raydream.tuning.plan import Search, space_changes

    space = load_space("cls_cnn")
    search = Search(space=space, data="/data", experiment_dir=str(tmp_path / "exp"), num_samples=4, max_epochs=3,
                    grace_period=1, reduction_factor=3, search_alg="optuna", max_concurrent=2, time_budget=60.0,
                    train_overrides={"max_epochs": 3, "seed": 5}, torch_backend="gloo", metric="val_spearman")
    search.write()
    back = Search.read(tmp_path / "exp")
    assert back == search and back.mode == "max"
    record = tmp_path / "exp" / "raydream_search.json"
    text = record.read_text()
    record.write_text(text.replace('"gloo"', '"mpi"'))
    with pytest.raises(ConfigError, match="torch_backend must be one of nccl, gloo or null, got 'mpi'; the record is"):
        Search.read(tmp_path / "exp")
    record.write_text(text.replace('"val_spearman"', '"spearman"'))
    with pytest.raises(ConfigError, match="metric must be one of val_r2, val_pearson, val_spearman, val_mse, got "):
        Search.read(tmp_path / "exp")
    record.write_text(text.replace('"metric": "val_spearman",', ""))  # a record from before --metric
    assert Search.read(tmp_path / "exp").metric == "val_r2"
    other = load_space("cnn")
    changes = space_changes(space, other)
    assert changes[0] == "model: cls_cnn -> baseline_cnn" and any(c.startswith("train.loss: choice") for c in changes)
    assert space_changes(space, load_space("cls_cnn")) == []


def test_param_space_turns_distributions_into_tune_domains():
    from ray import tune

    space = build_param_space(load_space("resnet"), {"max_epochs": 3})
    assert space["model"] == "resnet"
    legnet = build_param_space(load_space("legnet"), {})
    assert legnet["model_config"]["block_channels"].categories == ["[48, 32]", "[64, 32]", "[64, 48, 32]"]
    assert isinstance(space["train"]["lr"], tune.search.sample.Float)
    assert isinstance(space["model_config"]["num_blocks"], tune.search.sample.Categorical)
    assert isinstance(space["train"]["swa_start"], tune.search.sample.Integer)  # randint
    assert space["train"]["max_epochs"] == 3


def test_cli_errors_are_one_line_before_ray_starts(tmp_path, capsys, monkeypatch):
    assert run_cli(main, ["--space", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no search space named 'nope'")
    assert run_cli(main, ["--data", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert run_cli(main, ["--space", "lightgbm", "--max-epochs", "500"]) == 2
    assert "lightgbm trials may get only 400 rounds, fewer than the 500 epochs" in capsys.readouterr().err
    assert run_cli(main, ["--space", "random_forest", "--num-workers", "2"]) == 2
    assert "random_forest grows each forest in one process" in capsys.readouterr().err
    assert run_cli(main, ["--max-concurrent", "0"]) == 2
    assert "--max-concurrent must be >= 1" in capsys.readouterr().err
    assert run_cli(main, ["--time-budget", "-5"]) == 2
    assert "--time-budget must be a number of seconds > 0, got -5" in capsys.readouterr().err
    assert run_cli(main, ["--address", "127.0.0.1:6379", "--num-cpus", "2"]) == 2
    assert "--num-cpus sizes a Ray instance started here" in capsys.readouterr().err
    assert run_cli(main, ["--address", "127.0.0.1:6379", "--dashboard"]) == 2
    assert "--dashboard starts the dashboard of a Ray instance started here" in capsys.readouterr().err
    # A cluster address nothing answers at (ray.init would try it again for minutes), or not an address
    assert run_cli(main, ["--address", "127.0.0.1:1"]) == 2
    assert "--address 127.0.0.1:1: no Ray cluster answers there (Connection refused)" in capsys.readouterr().err
    assert run_cli(main, ["--address", "head-node"]) == 2
    assert "--address 'head-node': expected HOST:PORT" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert run_cli(main, []) == 2
    assert "$RAY_ADDRESS 127.0.0.1:1: no Ray cluster answers there" in capsys.readouterr().err
    monkeypatch.delenv("RAY_ADDRESS")
    assert run_cli(main, ["--keep-checkpoints", "0"]) == 2
    assert "--keep-checkpoints must be >= 1" in capsys.readouterr().err
    # trial-shape and number flags, all before Ray starts or any data is read
    for flags, words in [(["--num-workers", "0"], "--num-workers must be >= 1, got 0"),
                         (["--num-workers", "1000"], "a trial needs 1000 worker(s) x 1 CPU + 1000 for Ray Data"),
                         (["--cpus-per-worker", "0"], "--cpus-per-worker must be >= 1, got 0"),
                         (["--seed", "-1"], "--seed must be >= 0, got -1"),
                         (["--time-budget", "nan"], "--time-budget must be a number of seconds > 0, got nan"),
                         (["--num-cpus", "-1"], "--num-cpus must be >= 1, got -1"),
                         (["--stall-timeout", "inf"], "--stall-timeout must be a number of seconds > 0, got inf"),
                         (["--gpus-per-worker", "-1"], "--gpus-per-worker must be a number >= 0, got -1")]:
        assert run_cli(main, [*flags, "--data", str(tmp_path / "never-read.txt")]) == 2, flags
        assert words in capsys.readouterr().err, flags


def test_the_python_api_and_log_refuse_bad_flags_before_ray_starts(tmp_path, capsys):
    import importlib.util

    import raydream

    with pytest.raises(ConfigError, match="search\\(\\): unknown flag 'num_sample'; flags are: address, "):
        raydream.search("resnet", num_sample=4)
    with pytest.raises(ConfigError, match="search\\(\\): smoke must be True or False, got 'yes'"):
        raydream.search("resnet", smoke="yes")
    with pytest.raises(ConfigError, match="--max-concurrent must be >= 1"):
        raydream.search("resnet", max_concurrent=0, data=tmp_path / "never-read.txt")
    assert run_cli(main, ["--log", "neptune"]) == 2
    assert "argument --log: invalid choice: 'neptune'" in capsys.readouterr().err
    if importlib.util.find_spec("wandb") is None:
        assert run_cli(main, ["--log", "wandb", "--storage-path", str(tmp_path)]) == 2
        assert capsys.readouterr().err.startswith("error: --log wandb needs the wandb package, which is not installed")
    assert not list(tmp_path.iterdir())


def run_tune(*args: str, timeout: int) -> subprocess.CompletedProcess:
    """`python -m raydream.tune ARGS` in a subprocess; fails the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "raydream.tune", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


TINY_SPACE = """
model: resnet
model_config:
  channels: {choice: [8, 16]}
  num_blocks: 2
  kernel_size: 3
train:
  lr: {loguniform: [1.0e-3, 1.0e-2]}
  batch_size: 128
  train_rows: 768
  val_rows: 256
"""


def test_validation_rows_are_shared_out_exactly_once_across_workers():
    import numpy as np

    from raydream.train.loop import _rows_of_rank

    batches = [{"expression": np.arange(s, s + n), "sequence": np.arange(s, s + n).astype(str)}
               for s, n in [(0, 7), (7, 1), (8, 12)]]
    shares = [np.concatenate([b["expression"] for b in _rows_of_rank(iter(batches), r, 3)]) for r in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(20))
    assert shares[1].tolist() == list(range(1, 20, 3))


def test_a_networks_untrained_output_starts_at_the_mean_of_its_training_rows():
    import numpy as np
    import torch

    from raydream.models import create_model, model_config
    from raydream.train.loop import starting_output

    labels = np.array([2.0, 4.0, 9.0])
    assert starting_output("resnet", labels) == {"initial_prediction": 5.0}
    assert starting_output("legnet", labels) == {"initial_prediction": 5.0}
    assert starting_output("resnet", np.array([-1.0, 0.5])) == {}  # not an expression level: the default stays
    assert starting_output("lightgbm", labels) == {}
    model = create_model("resnet", model_config("resnet", {"channels": 8, **starting_output("resnet", labels)})).eval()
    x = torch.zeros(3, 4, 110)
    with torch.no_grad():
        assert model(x).tolist() == pytest.approx([5.0] * 3, abs=0.5)


LIGHTGBM_SPACE = """
model: lightgbm
model_config:
  k: 3
  num_leaves: 15
  num_boost_round: 40
  learning_rate: {choice: [0.002, 0.3]}
"""


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_asha_as_raydream_sets_it_up_stops_a_trial_that_falls_behind_at_a_rung_by_the_searchs_metric(tmp_path):
    import ray
    from ray import tune

    from raydream.tuning.plan import Search, plan_resources
    from raydream.results.table import experiment_table
    from raydream.tuning.tuner import _new_tuner

    space = tmp_path / "lr.yaml"
    space.write_text("model: resnet\ntrain:\n  lr: {choice: [0.3, 0.002]}\n")
    search = Search(space=load_space(str(space)), data=str(tmp_path), experiment_dir=str(tmp_path / "asha"),
                    num_samples=2, max_epochs=4, grace_period=1, reduction_factor=2, seed=1,
                    train_overrides={"max_epochs": 4}, metric="val_mse")
    search.write()

    def trial(config):  # MSE 1 / (lr x epoch), lower is better: the 0.002 trial falls behind at once
        for epoch in range(1, 5):
            tune.report({"epoch": epoch, "val_mse": 1 / (config["train"]["lr"] * epoch), "val_r2": -epoch})

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        plan = plan_resources({"CPU": 2}, 1, 1, max_concurrent=1)
        _new_tuner(search, tune.with_resources(trial, {"CPU": 1}), plan, verbose=0).fit()
    finally:
        ray.shutdown()
    table = experiment_table(tmp_path / "asha")
    # seed 1 samples 0.3, then 0.002: the second trial is below the first at rung 1, and stops
    assert table[["lr", "status", "epochs"]].values.tolist() == [[0.3, "completed", 4], [0.002, "stopped early", 1]]


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_a_search_across_families_gives_each_trial_one_familys_config_and_ranks_them_in_one_table(tmp_path):
    import ray
    from ray import tune

    from raydream.tuning.plan import Search, plan_resources
    from raydream.results.table import experiment_table
    from raydream.tuning.tuner import _new_tuner

    space = tmp_path / "families.yaml"
    space.write_text("families:\n"
                     "  small: {model: resnet, model_config: {channels: {choice: [8, 16]}}, train: {max_epochs: 2}}\n"
                     "  trees: {model: lightgbm, model_config: {num_leaves: {choice: [15, 31]}}, "
                     "train: {max_epochs: 2}}\n")
    search = Search(space=load_space(str(space)), data=str(tmp_path), experiment_dir=str(tmp_path / "fam"),
                    num_samples=6, max_epochs=2, grace_period=2, reduction_factor=2, seed=3,
                    train_overrides={"max_epochs": 2})
    search.write()

    def trial(config, space):  # what TrainRunTrial builds from: the drawn family's config alone
        used = space.resolve(config)
        assert set(used) == {"family", "model", "model_config", "train"}
        assert used["model"] == {"small": "resnet", "trees": "lightgbm"}[used["family"]]
        width = used["model_config"].get("channels") or used["model_config"]["num_leaves"]
        for epoch in (1, 2):
            tune.report({"epoch": epoch, "val_r2": width / 100 * epoch})

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        plan = plan_resources({"CPU": 2}, 1, 1, max_concurrent=2)
        _new_tuner(search, tune.with_resources(tune.with_parameters(trial, space=search.space), {"CPU": 1}), plan,
                   verbose=0).fit()
    finally:
        ray.shutdown()
    table = experiment_table(tmp_path / "fam")
    assert list(table.columns[:5]) == ["rank", "trial", "family", "channels", "num_leaves"]
    assert set(table["family"]) == {"small", "trees"} and (table["status"] == "completed").all()
    for _, row in table.iterrows():  # each trial has its own family's key, and not the other's
        own, other = ("channels", "num_leaves") if row["family"] == "small" else ("num_leaves", "channels")
        assert row[own] in (8, 16, 15, 31) and pd.isna(row[other])
        assert row["best_val_r2"] == pytest.approx(row[own] / 50)


def test_repeats_train_the_top_configs_as_sampled_with_the_next_seeds(tmp_path):
    from test_results import fake_trial  # tests/ is on sys.path

    from raydream.tuning.plan import Search
    from raydream.tuning.tuner import repeat_points

    space = load_space("families")
    search = Search(space=space, data=str(tmp_path), experiment_dir=str(tmp_path), num_samples=4, max_epochs=2,
                    grace_period=1, reduction_factor=2, seed=7, repeats=2)
    search.write()
    legnet = {"model": "legnet", "model_config": {"block_channels": "[64, 32]"}, "train": {"lr": 0.01, "seed": 7}}
    trees = {"model": "lightgbm", "model_config": {"k": 3}, "train": {"seed": 7}}
    for i, (family, r2) in enumerate([("legnet", 0.3), ("lightgbm", 0.2), ("legnet", 0.1), ("lightgbm", 0.4)]):
        fake_trial(tmp_path, f"t_{i}", {"family": family, "legnet": legnet, "lightgbm": trees}, [r2])
    points = repeat_points(search)
    assert [(p["repeat_of"], p["family"]) for p in points] == [
        ("3", "lightgbm"), ("3", "lightgbm"), ("0", "legnet"), ("0", "legnet"), ("1", "lightgbm"), ("1", "lightgbm")]
    assert [p[p["family"]]["train"]["seed"] for p in points] == [8, 9] * 3
    assert points[2]["legnet"] == {**legnet, "train": {"lr": 0.01, "seed": 8}}  # as Tune sampled it, JSON and all
    assert points[2]["lightgbm"] == trees


def test_a_search_whose_time_budget_ran_out_before_any_trial_says_so_and_repeats_nothing(tmp_path, capsys):
    # On a loaded machine, Ray and the first trial's process can take longer than a short budget.
    from raydream.core.errors import RayDreamError
    from raydream.tuning.plan import Search
    from raydream.tuning.tuner import _finish, repeat_points

    search = Search(space=load_space("random_forest"), data=str(tmp_path), experiment_dir=str(tmp_path / "budget"),
                    num_samples=200, max_epochs=2, grace_period=1, reduction_factor=2, seed=0, repeats=2,
                    time_budget=30.0, metric="val_mse")
    search.write()
    assert repeat_points(search) == []
    with pytest.raises(RayDreamError, match=r"^the time budget \(30 s\) ran out before any trial reported a "
                                            r"validation score; give a larger --time-budget"):
        _finish(search, elapsed=31.0)
    assert "Trials ranked by best validation MSE:\n(no trials)\n" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "budget" / "ranked_trials.csv")
    assert table.empty and {"trial", "best_val_mse", "checkpoint"} <= set(table.columns)


@pytest.mark.ray
@pytest.mark.timeout(200)
def test_a_random_forest_search_ends_at_its_time_budget_and_its_table_rebuilds_from_files(tmp_path, capsys):
    # A random-forest trial is one process, which Tune reuses for the next trial (networks and
    # LightGBM run as Train runs in tests/test_multinode.py). 200 trials take well over 45 s.
    # How many finish in the budget depends on the machine's load: Ray runs the trial's process at
    # niceness 15, below the searches of the other test process (2 finished in 30 s in one run of
    # the suite on 2 cores), so what depends on the top 3 is checked for as many as there are.
    # Ranked by MSE, lower is better: ASHA, the kept checkpoints, the table and the summary.
    # Then the top 3 configurations are trained again with 2 other seeds each.
    # Run through the Python API, with a Tune callback of the caller's and MLflow logging.
    from ray.tune import Callback

    import raydream

    class Reported(Callback):
        def __init__(self):
            self.trials = set()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.trials.add(trial.trial_id)

    reported = Reported()
    grid = raydream.search("random_forest", smoke=True, num_samples=200, time_budget=45, max_concurrent=1,
                           metric="val_mse", repeats=2, storage_path=tmp_path / "results", name="budget",
                           log=["mlflow"], callbacks=[reported])
    done = capsys.readouterr()
    best = grid.get_best_result(metric="val_mse", mode="min")
    assert grid.experiment_path == str(tmp_path / "results" / "budget") and best.checkpoint is not None
    scored_ids = {r.metrics["trial_id"] for r in grid if "val_mse" in (r.metrics or {})}
    assert scored_ids and scored_ids == reported.trials
    # Ray's own reader of an experiment reads it too (the search's callbacks unpickle as no-ops)
    from ray.tune import ExperimentAnalysis

    rows = ExperimentAnalysis(grid.experiment_path).dataframe(metric="val_mse", mode="min")
    assert scored_ids <= set(rows["trial_id"])
    # every trial of the search (and of its repeats) is an MLflow run, with its metrics
    from mlflow.tracking import MlflowClient

    assert f"raydream: MLflow runs in sqlite:///{tmp_path / 'results' / 'mlflow.db'} (experiment budget)" in done.out
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("budget").experiment_id])
    scored = [r for r in grid if r.metrics and "val_mse" in r.metrics]
    top = min(3, len(scored))  # the configurations trained again by --repeats 2
    assert len(runs) >= len(scored) + 2 * top
    assert sum("val_mse" in r.data.metrics for r in runs) >= len(scored) + 2 * top
    assert "up to 1 trial(s) at a time" in done.out and ", by val_mse (min)\n" in done.out
    table = pd.read_csv(tmp_path / "results" / "budget" / "ranked_trials.csv")
    assert 1 <= len(table) < 200
    assert (table["status"] == "completed").any()
    assert Path(table.loc[0, "checkpoint"]).is_dir()
    scores = table["best_val_mse"].dropna().tolist()
    assert scores == sorted(scores)
    # The baselines are rows of the printed table, and the summary compares on the test split.
    assert "Trials ranked by best validation MSE, with the baselines:" in done.out
    assert re.search(r"\n +- +k-mer ridge .* baseline\n", done.out)
    assert (tmp_path / "results" / "budget" / "baselines.json").is_file()
    assert "On the held-out test split (the baselines fit on the first 5,099 training rows" in done.out
    number = r"-?[0-9.]+"
    assert re.search(rf"\n  best trial +R\^2 {number}, Pearson r {number}, Spearman rho {number}, MSE {number}\n",
                     done.out)
    assert re.search(r"\n  training mean +R\^2 -?0\.0[0-9]+, Pearson r -, Spearman rho -, MSE ", done.out)
    assert re.search(rf"the best trial (beats|does not beat) the k-mer ridge by MSE: {number} against {number}",
                     done.out)
    if top == 3:  # three checkpoints on disk: their mean prediction is scored too
        assert "\n  mean of the top 3 checkpoints  R^2 " in done.out
        assert re.search(rf"the mean of the top 3 checkpoints (beats|does not beat) the k-mer ridge by MSE: "
                         rf"{number}", done.out)
    else:
        assert "mean of the top" not in done.out
    # The table is rebuilt from the experiment's files, without Ray, the same way.
    from raydream.results.table import experiment_table

    rebuilt = experiment_table(tmp_path / "results" / "budget")
    assert rebuilt[["trial", "status", "checkpoint"]].values.tolist() == table[["trial", "status", "checkpoint"]].values.tolist()
    # (a trial the budget cut before its first report has no score: NaN in both)
    assert rebuilt["best_val_mse"].tolist() == pytest.approx(table["best_val_mse"].tolist(), nan_ok=True)

    # --repeats: each of the top 3 sampled configs again, with seeds 1 and 2 (the search's is 0)
    import json

    from raydream.results.table import repeat_runs

    runs = repeat_runs(tmp_path / "results" / "budget", "val_mse")
    assert sorted(runs["repeat_of"]) == sorted(table["trial"].head(top).tolist() * 2)
    assert (runs["status"] == "completed").all() and runs["best_val_mse"].notna().all()
    for trial, group in runs.groupby("repeat_of"):
        configs = [json.loads((Path(c).parent / "params.json").read_text()) for c in group["checkpoint"]]
        assert sorted(c["train"]["seed"] for c in configs) == [1, 2]
        assert all(c["model_config"] == configs[0]["model_config"] for c in configs)
    summary = pd.read_csv(tmp_path / "results" / "budget" / "repeats.csv", dtype={"trial": str})
    assert summary["trial"].tolist() == table["trial"].head(top).tolist() and (summary["seeds"] == 2).all()
    assert summary["mean_val_mse"].tolist() == pytest.approx(runs.groupby("repeat_of")["best_val_mse"].mean()
                                                             [summary["trial"]].tolist())
    assert summary["sd_test_mse"].notna().all()
    assert re.search(rf"\n{summary['trial'][0]} +{number} +2 +{number} \+- {number} +{number} \+- {number}\n",
                     done.out)


def _wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "timed out waiting for the search to get going"
        time.sleep(0.5)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a search started with start_new_session=True and any Ray process it left (the
    group may be gone already: a search that ended cleanly takes its processes with it)."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _epochs(trial_dir: Path) -> list[int]:
    progress = trial_dir / "progress.csv"
    return pd.read_csv(progress)["epoch"].tolist() if progress.is_file() and progress.stat().st_size else []


def test_resume_refuses_a_changed_space_a_missing_experiment_and_new_settings(tmp_path, capsys):
    from raydream.data.prepare import resolve_dataset
    from raydream.tuning.plan import Search

    experiment = tmp_path / "exp"
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    search = Search(space=load_space(str(space)), data=str(resolve_dataset(None)), experiment_dir=str(experiment),
                    num_samples=2, max_epochs=2, grace_period=1, reduction_factor=2)
    search.write()
    assert run_cli(main, ["--resume", str(tmp_path / "nope")]) == 2
    assert "nope: no such experiment directory" in capsys.readouterr().err
    assert run_cli(main, ["--resume", str(tmp_path)]) == 2
    assert "not a raydream experiment (no raydream_search.json)" in capsys.readouterr().err
    assert run_cli(main, ["--resume", str(experiment), "--num-samples", "5"]) == 2
    assert "it takes only --space (to check), --num-cpus, --address and --verbose, not --num-samples" in capsys.readouterr().err
    space.write_text(TINY_SPACE.replace("[8, 16]", "[8, 32]"))
    assert run_cli(main, ["--resume", str(experiment), "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert "differs from the space exp was started with (model_config.channels: choice [8, 16] -> choice [8, 32])" in err
    assert run_cli(main, ["--resume", str(experiment)]) == 2  # the record alone: no Tune state yet
    assert "holds no Tune experiment state to resume" in capsys.readouterr().err
    Search(**{**search.__dict__, "data": str(tmp_path / "gone")}).write()
    assert run_cli(main, ["--resume", str(experiment)]) == 2
    assert "gone: not a prepared dataset" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.ray
@pytest.mark.timeout(400)
def test_two_trials_share_a_gpu_in_mixed_precision_and_their_checkpoints_load_on_the_cpu(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    from ray.cluster_utils import Cluster

    import pyarrow.parquet as pq

    from raydream.data.prepare import resolve_dataset, split_files
    from raydream.core.metrics import regression_metrics
    from raydream.train.config import TrainConfig
    from raydream.train.steps import predict

    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 1,
                                                            "resources": {"TRIAL_DRIVER": 1000}})
    try:
        done = run_tune("--space", str(space), "--num-samples", "2", "--max-epochs", "2", "--gpus-per-worker", "0.5",
                        "--precision", "bf16", "--address", cluster.address, "--storage-path",
                        str(tmp_path / "results"), "--name", "gpu", timeout=380)
    finally:
        cluster.shutdown()
    assert "each trial: 2 CPU + 0.5 GPU for the trial's process, in Ray Train local mode" in done.stdout
    assert "up to 2 trial(s) at a time" in done.stdout
    table = pd.read_csv(tmp_path / "results" / "gpu" / "ranked_trials.csv")
    assert table["status"].tolist() == ["completed", "completed"]
    model, meta = restore_model(table.loc[0, "checkpoint"])  # trained on the GPU, loaded on the CPU
    assert meta["train_config"]["precision"] == "bf16"
    val = pq.read_table(split_files(resolve_dataset(None), "val")).to_pandas().iloc[:256]
    preds, labels = predict(model, [{"sequence": val["sequence"].values, "expression": val["expression"].values}],
                            TrainConfig(**meta["train_config"]), torch.device("cpu"))
    # validated in fp32 on the GPU (convolutions may use TF32), here on the CPU
    assert table.loc[0, "best_val_r2"] == pytest.approx(regression_metrics(labels, preds)["r2"], abs=5e-3)


def test_a_search_whose_trials_cannot_start_is_stopped_saying_what_they_wait_for(monkeypatch):
    import pickle
    from types import SimpleNamespace

    import raydream.train.trial
    from raydream.tuning.watch import SearchStallWatch

    monkeypatch.setattr(raydream.train.trial, "free_resources", lambda: "0 of 2 CPU, 0 of 0 GPU")
    watch = SearchStallWatch(limit_s=0.0, plan=plan_resources({"CPU": 2}, 1, 1))
    running, pending = SimpleNamespace(status="RUNNING"), SimpleNamespace(status="PENDING")
    watch.callback.on_step_begin(0, [running, pending])  # one runs: the other waits its turn
    assert watch.reason is None and not watch.stopper.stop_all()
    watch.callback.on_step_begin(1, [pending])
    watch.callback.on_step_begin(2, [pending])
    assert watch.stopper.stop_all()
    assert watch.reason == ("no trial could start for 0 s (--stall-timeout): each needs 2 CPU, and the cluster had "
                            "0 of 2 CPU, 0 of 0 GPU free")
    # pickled into the experiment, they come back as the watch of the process that reads them
    again = SearchStallWatch(limit_s=5.0, plan=plan_resources({"CPU": 2}, 1, 1))
    assert pickle.loads(pickle.dumps(watch.callback)) is again.callback
    assert pickle.loads(pickle.dumps(watch.stopper)) is again.stopper


def test_the_time_budget_stops_a_search_once_no_reported_checkpoint_is_being_saved(monkeypatch):
    # Tune takes a report's metrics, then saves its checkpoint in a task of its own; stopping
    # the experiment in between (Tune's time_budget_s does) left the best trial with a score
    # and no checkpoint.
    from types import SimpleNamespace

    import raydream.tuning.watch as watch_module
    from raydream.tuning.watch import SAVE_GRACE_S, SearchStallWatch

    now = [1000.0]
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: now[0])
    watch = SearchStallWatch(limit_s=600.0, plan=plan_resources({"CPU": 2}, 1, 1), budget_s=30.0)
    saving = SimpleNamespace(status="RUNNING", is_saving=True)
    done = SimpleNamespace(status="TERMINATED", is_saving=False)
    watch.callback.on_step_begin(0, [done, saving])
    now[0] += 29.9
    assert not watch.stopper.stop_all()  # within the budget
    now[0] += 0.2
    assert not watch.stopper.stop_all() and watch.reason is None  # past it, while a save is in flight
    saving.is_saving = False
    assert watch.stopper.stop_all()  # the save is in
    saving.is_saving = True
    now[0] += SAVE_GRACE_S
    assert watch.stopper.stop_all()  # a save that never comes is not waited for
    # without a budget (the --repeats runs), time alone never stops it
    unbounded = SearchStallWatch(limit_s=600.0, plan=plan_resources({"CPU": 2}, 1, 1))
    now[0] += 1e6
    assert not unbounded.stopper.stop_all()


def test_a_copy_of_tunes_state_that_lost_a_renamed_temporary_file_is_not_reported_as_an_error():
    import logging

    from raydream.tuning.tuner import superseded_state_copy

    def record(err: BaseException) -> logging.LogRecord:
        try:
            raise err
        except BaseException:
            return logging.LogRecord("ray.tune.execution.experiment_state", logging.ERROR, __file__, 1,
                                     "Saving experiment state to storage at 'x' failed with exception: ", None,
                                     sys.exc_info())

    # as two searches at once on 2 cores printed it
    lost = FileNotFoundError("[Errno 2] Failed to open local file '/tmp/ray/session_x/artifacts/t/second/driver_"
                             "artifacts/.3d7b8430-6feb-4d48-96b4-334483f665e6-tmp-basic-variant-state-2026-12-02_"
                             "21-16-05.json'. Detail: [errno 2] No such file or directory")
    assert not superseded_state_copy(record(lost))
    # anything else that fails a copy is said
    assert superseded_state_copy(record(FileNotFoundError("Failed to open local file '/data/results/x.json'")))
    assert superseded_state_copy(record(PermissionError("[Errno 13] Permission denied: '/results'")))
    assert superseded_state_copy(logging.LogRecord("ray", logging.ERROR, __file__, 1, "no exception", None, None))


def test_the_summary_sets_the_search_beside_the_baselines_and_a_synthetic_librarys_ceiling(capsys):
    from raydream.tuning.tuner import _summary

    def scores(r2, pearson=0.5):
        return {"r2": r2, "pearson": pearson, "spearman": pearson, "mse": 1 - r2}

    baselines = {"fit_rows": 800, "val_rows": 100, "test_rows": 100, "baselines": {
        "training mean": {"val": {**scores(0.0), "pearson": None, "spearman": None},
                          "test": {**scores(-0.01), "pearson": None, "spearman": None}},
        "k-mer ridge": {"ks": [1, 2, 3], "alpha": 10.0, "val": scores(0.3), "test": scores(0.35)}}}
    best = pd.Series({"best_val_r2": 0.4, "val_pearson": 0.6, "val_spearman": 0.6, "val_mse": 0.6})
    _summary("val_r2", best, scores(0.45), scores(0.5), baselines, {"train": 0.7, "val": 0.72, "test": 0.74})
    out = capsys.readouterr().out
    assert "On the held-out test split (the baselines fit on the first 800 training rows" in out
    assert "  (noise ceiling of this synthetic library on the whole split: R^2 0.7400)\n" in out
    assert "the best trial beats the k-mer ridge by R^2: 0.4500 against 0.3500" in out
    assert "the mean of the top 3 checkpoints beats the k-mer ridge by R^2: 0.5000 against 0.3500" in out
    _summary("val_r2", best, None, None, baselines, {})  # no test split scored; real data
    out = capsys.readouterr().out
    assert "On the validation split" in out and "noise ceiling" not in out
    assert "the best trial beats the k-mer ridge by R^2: 0.4000 against 0.3000" in out


def test_work_in_the_background_returns_its_value_or_raises_its_error_or_times_out():
    import threading

    from raydream.core.background import InBackground

    assert InBackground(sum, [1, 2, 3]).result() == 6

    def fails():
        raise ValueError("no baselines")

    with pytest.raises(ValueError, match="no baselines"):
        InBackground(fails).result()
    release = threading.Event()
    with pytest.raises(TimeoutError, match="still running after 0.2 s"):
        InBackground(release.wait, 30).result(0.2)
    release.set()
