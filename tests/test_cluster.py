"""Cluster launcher configs, checked offline with the installed Ray's own schema."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def validate(config: dict) -> dict:
    """Fill in Ray's defaults and validate, as `ray up` does before it touches a cloud."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(config)
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_validation_and_declares_the_trial_driver_resource():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    prepared = validate(config)
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"]["TRIAL_DRIVER"] > 0
    gpu = prepared["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["node_config"]["InstanceType"].startswith("g5.")
    assert prepared["idle_timeout_minutes"] > 0
    assert any("pip install -e" in c for c in prepared["setup_commands"])
    text = (ROOT / "cluster.yaml").read_text().lower()
    assert "aws_secret_access_key" not in text and "aws_access_key_id" not in text


def test_the_on_premises_yaml_passes_rays_validation_and_its_head_declares_the_trial_driver_resource():
    config = yaml.safe_load((ROOT / "docs" / "cluster-onprem.yaml").read_text())
    prepared = validate(config)
    assert prepared["provider"]["type"] == "local" and len(prepared["provider"]["worker_ips"]) == 2
    (node_type,) = prepared["available_node_types"].values()  # Ray's one on-premises node type
    assert node_type["min_workers"] == node_type["max_workers"] == 2
    head_start = " ".join(prepared["head_start_ray_commands"])
    assert "--head" in head_start and """--resources='{"TRIAL_DRIVER": 1000}'""" in head_start
    assert any("pip install -e" in c for c in prepared["setup_commands"])


def test_a_broken_cluster_yaml_fails_with_rays_message():
    import jsonschema

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["min_workers"] = "none"
    with pytest.raises(jsonschema.ValidationError, match="'none' is not of type 'integer'"):
        validate(config)
    config = yaml.safe_load((ROOT / "docs" / "cluster-onprem.yaml").read_text())
    config["idle_timeout_minutes"] = "soon"
    with pytest.raises(jsonschema.ValidationError, match="'soon' is not of type 'number'"):
        validate(config)
