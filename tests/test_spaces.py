"""Search-space YAML: every shipped space loads; every malformed case names file and key."""

from pathlib import Path

import pytest

from raydream.core.errors import ConfigError
from raydream.tuning.space import Distribution, available_spaces, load_space


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


SHIPPED = ["cnn", "cls_cnn", "resnet", "legnet", "lightgbm", "random_forest", "families", "legnet_full"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_load(name):
    space = load_space(name)
    assert bool(space.sampled_keys()) == (name != "legnet_full")  # the published LegNet is one model
    assert space.description
    assert name in available_spaces()


def test_legnet_spaces_read_legnets_input_and_the_full_one_has_its_published_shape():
    from raydream.models import create_model
    from raydream.train.config import TrainConfig, build_model_config

    for name in ("legnet", "legnet_full"):
        train = load_space(name).train
        assert (train["seq_len"], train["align"], train["pad"], train["input_flags"]) == (150, "right", "plasmid", True)
    full = load_space("legnet_full")
    config = build_model_config("legnet", full.model_config, TrainConfig(**full.train))
    model = create_model("legnet", config)
    assert sum(p.numel() for p in model.parameters()) == 1_725_122
    assert (full.train["batch_size"], full.train["lr"], full.train["weight_decay"]) == (1024, 0.005, 0.01)


def test_tree_spaces_search_features_and_the_report_hyperparameters():
    keys = load_space("lightgbm").sampled_keys()
    for key in ["k", "window", "num_leaves", "learning_rate", "lr_decay", "bagging_fraction", "feature_fraction",
                "objective"]:
        assert f"model_config.{key}" in keys
    assert load_space("lightgbm").fewest_rounds() == 400
    assert load_space("random_forest").fewest_rounds() == 64
    assert load_space("resnet").fewest_rounds() is None


def test_resnet_space_searches_what_the_issue_asks_for():
    keys = load_space("resnet").sampled_keys()
    for key in ["model_config.channels", "model_config.kernel_size", "model_config.num_blocks",
                "train.lr", "train.weight_decay", "train.switch_epoch", "train.batch_size"]:
        assert key in keys


def test_distributions_and_constants_parse(tmp_path):
    space = load_space(write(tmp_path, """
model: resnet
model_config:
  channels: {quniform: [16, 64, 16]}
  dropout: {uniform: [0.0, 0.3]}
  num_blocks: 2
train:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  batch_size: {choice: [32, 64]}
"""))
    assert space.model_config["channels"] == Distribution("quniform", (16, 64, 16))
    assert space.model_config["num_blocks"] == 2
    assert space.sampled_keys() == ["model_config.channels", "model_config.dropout", "train.lr", "train.batch_size"]


def test_numbers_in_e_notation_without_a_dot_are_numbers(tmp_path):
    # YAML 1.2 reads them as floats; PyYAML's YAML 1.1 rules made them strings.
    space = load_space(write(tmp_path, """
model: resnet
train:
  lr: {loguniform: [1e-4, 1E-2]}
  weight_decay: 5e-5
  sgd_momentum: 9e-1
"""))
    assert space.train["lr"] == Distribution("loguniform", (1e-4, 1e-2))
    assert space.train["weight_decay"] == 5e-5 and space.train["sgd_momentum"] == 0.9


CONDITIONAL = """
model: cls_cnn
model_config:
  channels: {choice: [8, 16]}
train:
  loss: {choice: [cross_entropy, soft_kl]}
  soft_label_sd: {uniform: [0.3, 1.0], when: {loss: soft_kl}}
  optimizer: adam_sgd
  switch_epoch: {randint: [2, 4], when: {train.optimizer: adam_sgd}}
"""


def test_conditional_keys_are_dropped_from_a_trial_when_their_condition_fails(tmp_path):
    space = load_space(write(tmp_path, CONDITIONAL))
    assert space.train["soft_label_sd"].when == (("train.loss", ("soft_kl",)),)
    assert "train.soft_label_sd" in space.sampled_keys()
    sampled = {"model": "cls_cnn", "model_config": {"channels": 8},
               "train": {"loss": "cross_entropy", "soft_label_sd": 0.5, "switch_epoch": 3}}
    used = space.resolve(sampled)
    assert "soft_label_sd" not in used["train"] and used["train"]["switch_epoch"] == 3  # optimizer's constant holds
    assert sampled["train"]["soft_label_sd"] == 0.5  # the sample itself is left alone
    assert space.resolve({**sampled, "train": {**sampled["train"], "loss": "soft_kl"}})["train"]["soft_label_sd"] == 0.5


def test_a_condition_on_an_unset_key_tests_its_default(tmp_path):
    space = load_space(write(tmp_path, """
model: resnet
train:
  switch_epoch: {randint: [2, 4], when: {optimizer: adam_sgd}}
"""))
    assert space.resolve({"model": "resnet", "train": {"switch_epoch": 2}})["train"] == {"switch_epoch": 2}


def test_choices_among_lists_travel_as_json_and_come_back_as_lists():
    space = load_space("legnet")
    assert space.model_config["block_channels"].encoded and not space.model_config["stem_channels"].encoded
    used = space.resolve({"model": "legnet", "model_config": {"block_channels": "[64, 32]", "stem_channels": 32},
                          "train": {}})
    assert used["model_config"] == {"block_channels": [64, 32], "stem_channels": 32}


def test_a_space_of_families_draws_a_family_then_its_keys_and_resolves_to_that_family():
    from raydream.tuning.plan import build_param_space, space_changes
    from raydream.tuning.space import FamilySpace, parse_space

    space = load_space("families")
    assert isinstance(space, FamilySpace) and list(space.families) == ["resnet", "legnet", "lightgbm"]
    for name in space.families:  # each family is its shipped space
        assert space.families[name].model_config == load_space(name).model_config
        assert space.families[name].train == load_space(name).train
    keys = space.sampled_keys()
    assert keys[0] == "family" and keys.count("model_config.kernel_size") == 1  # resnet's and legnet's, one column
    assert space.train == {"max_epochs": 8} and space.has_network and space.fewest_rounds() == 400
    tune_space = build_param_space(space, {"max_epochs": 3, "seed": 1})
    assert tune_space["family"].categories == ["resnet", "legnet", "lightgbm"]
    assert tune_space["lightgbm"]["train"] == {"max_epochs": 3, "seed": 1}
    config = {"family": "legnet", "repeat_of": "x",
              "resnet": {"model": "resnet", "model_config": {"channels": 32}, "train": {"lr": 0.1}},
              "legnet": {"model": "legnet", "model_config": {"block_channels": "[64, 32]"}, "train": {"lr": 0.01}}}
    assert space.resolve(config) == {"family": "legnet", "repeat_of": "x", "model": "legnet",
                                     "model_config": {"block_channels": [64, 32]}, "train": {"lr": 0.01}}
    # a resumed search names what changed, family by family
    other = parse_space(space.text.replace("stem_channels: {choice: [32, 48]}", "stem_channels: 32"), "other.yaml")
    assert space_changes(space, other) == ["families.legnet.model_config.stem_channels: choice [32, 48] -> 32"]
    assert space_changes(space, load_space("resnet")) == ["families: ['resnet', 'legnet', 'lightgbm'] -> none"]


FAMILY = "families:\n  a: {model: resnet, train: {lr: {loguniform: [1.0e-3, 1.0e-2]}}}\n"
BAD_FAMILIES = {
    "one_family": ("families:\n  a: {model: resnet}\n", "families: expected a mapping of two or more names"),
    "beside": (FAMILY + "  b: {model: legnet}\nmodel: resnet\n", "unknown top-level key 'model' beside families"),
    "reserved_name": (FAMILY + "  train: {model: legnet}\n", "'train' cannot name a family"),
    "not_a_mapping": (FAMILY + "  b: legnet\n", "families.b: expected a mapping with keys model"),
    "unknown_key": (FAMILY + "  b: {model: legnet, trainer: {}}\n", "families.b.trainer: unknown key"),
    "family_error": (FAMILY + "  b: {model: legnet, model_config: {width: 3}}\n",
                     "families.b.model_config: unknown key 'width'"),
    "random_forest": (FAMILY + "  b: {model: random_forest}\n", "families.b.model: random_forest grows each forest"),
    "epochs_differ": (FAMILY + "  b: {model: lightgbm, train: {max_epochs: 4}}\n",
                      "the families' train.max_epochs differ (a 10, b 4)"),
}


BAD = {
    "syntax": ("model: resnet\ntrain: {lr: [1,\n", "YAML syntax error"),
    "not_mapping": ("- 1\n- 2\n", "expected a mapping"),
    "unknown_top": ("model: resnet\ntrainer: {}\n", "unknown top-level key 'trainer'"),
    "unknown_model": ("model: transformer\n", "model: expected one of"),
    "unknown_model_key": ("model: resnet\nmodel_config: {width: 3}\n", "model_config: unknown key 'width'"),
    "unknown_train_key": ("model: resnet\ntrain: {epochs: 3}\n", "train: unknown key 'epochs'"),
    "unknown_distribution": ("model: resnet\ntrain: {lr: {normal: [0, 1]}}\n", "train.lr: unknown distribution 'normal'"),
    "two_distributions": ("model: resnet\ntrain: {lr: {uniform: [0.1, 1], loguniform: [0.1, 1]}}\n", "exactly one"),
    "low_ge_high": ("model: resnet\ntrain: {lr: {uniform: [0.1, 0.01]}}\n", "train.lr: uniform needs low < high"),
    "log_nonpositive": ("model: resnet\ntrain: {lr: {loguniform: [0, 0.1]}}\n", "loguniform needs low > 0"),
    "wrong_arity": ("model: resnet\ntrain: {lr: {uniform: [0.1]}}\n", "uniform takes 2 numbers"),
    "randint_float": ("model: resnet\nmodel_config: {num_blocks: {randint: [1.5, 3]}}\n", "randint bounds must be integers"),
    "bad_choice_value": ("model: resnet\nmodel_config: {kernel_size: {choice: [3, 4]}}\n", "kernel_size must be a positive odd number"),
    "wrong_type": ("model: resnet\ntrain: {batch_size: many}\n", "train: batch_size must be int, got 'many'"),
    "searched_budget": ("model: resnet\ntrain: {max_epochs: {choice: [2, 4]}}\n", "train.max_epochs cannot be searched"),
    "empty_choice": ("model: resnet\ntrain: {batch_size: {choice: []}}\n", "non-empty list"),
    "tree_torch_key": ("model: lightgbm\ntrain: {lr: 0.1}\n", "train.lr does not apply to the tree model 'lightgbm'"),
    "tree_bad_leaves": ("model: lightgbm\nmodel_config: {num_leaves: {choice: [31, 4096]}}\n", "num_leaves must be in 2..2047"),
    "when_not_mapping": ("model: resnet\ntrain: {lr: {uniform: [0.1, 1], when: adam}}\n", "train.lr.when: expected a mapping"),
    "when_unknown_key": ("model: resnet\ntrain: {lr: {uniform: [0.1, 1], when: {optimiser: adam_sgd}}}\n",
                         "train.lr.when.optimiser: no key 'train.optimiser' to test"),
    "when_itself": ("model: resnet\ntrain: {lr: {uniform: [0.1, 1], when: {lr: 0.5}}}\n", "no key 'train.lr' to test"),
    "when_continuous": ("model: resnet\ntrain: {lr: {uniform: [0.1, 1]}, weight_decay: {uniform: [0, 1], when: {lr: 0.5}}}\n",
                        "a condition can test only a choice of scalars or a constant"),
    "when_never": ("model: resnet\ntrain: {optimizer: {choice: [adam_sgd]}, lr: {uniform: [0.1, 1], when: {optimizer: sgd}}}\n",
                   "train.optimizer never takes 'sgd'"),
    "when_chained": ("model: cls_cnn\ntrain: {loss: {choice: [soft_kl, cross_entropy], when: {optimizer: adam_sgd}}, "
                     "soft_label_sd: {uniform: [0.3, 1], when: {loss: soft_kl}}}\n", "train.loss is conditional itself"),
}


BAD.update({f"families_{name}": case for name, case in BAD_FAMILIES.items()})


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_space_names_file_and_key(tmp_path, case):  # a family's errors name families.NAME. too
    text, words = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert path in str(info.value)
    assert words in str(info.value)


def test_unknown_space_name_lists_the_available_ones(tmp_path):
    with pytest.raises(ConfigError, match="no search space named 'nope'; available: .*resnet"):
        load_space("nope")
    with pytest.raises(ConfigError, match="no such search-space file"):
        load_space(str(tmp_path / "missing.yaml"))
