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
    assert any("pip install -q -e ~/raydream" in c for c in prepared["setup_commands"])
    assert prepared["file_mounts"] == {"~/raydream": "."}
    text = (ROOT / "cluster.yaml").read_text().lower()
    assert "aws_secret_access_key" not in text and "aws_access_key_id" not in text


def test_every_node_runs_rays_image_of_the_pinned_ray_and_a_supported_python():
    import re
    import tomllib

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (ray_pin,) = [d for d in project["dependencies"] if d.startswith("ray[")]
    low, high = re.search(r">=([\d.]+),<([\d.]+)", ray_pin).groups()
    lowest_python = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", project["requires-python"]).group(1).split("."))
    docker = config["docker"]
    images = {"gpu workers": docker["image"], "head": docker["head_image"]}
    for node, image in images.items():
        match = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-(cpu|gpu|cu\d+)", image)
        assert match, f"{node}: {image} is not a pinned rayproject/ray tag"
        version = tuple(int(x) for x in match.group(1).split("."))
        assert tuple(int(x) for x in low.split(".")) <= version < tuple(int(x) for x in high.split(".")), image
        assert (int(match.group(2)), int(match.group(3))) >= lowest_python, image
    assert images["gpu workers"].endswith("-gpu") and images["head"].endswith("-cpu")
    assert images["gpu workers"].rsplit("-", 1)[0] == images["head"].rsplit("-", 1)[0]  # one Ray, one Python
    # The share every container sees: exported by the head's host, mounted by each worker's.
    assert "--volume /mnt/shared:/mnt/shared" in docker["run_options"]
    assert any("exportfs" in c for c in config["initialization_commands"])
    worker_init = " ".join(config["available_node_types"]["gpu_worker"]["initialization_commands"])
    assert "mount -t nfs $RAY_HEAD_IP:/mnt/shared /mnt/shared" in worker_init


def test_a_gpu_worker_node_holds_one_trial_of_the_documented_search():
    from raydream.tuning.plan import plan_resources

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["node_config"]["InstanceType"] == "g5.xlarge"
    node = {"CPU": 4, "GPU": 1}  # g5.xlarge: 4 vCPU, one A10G
    plan = plan_resources(node, num_workers=1, cpus_per_worker=1, gpus_per_worker=1)
    assert plan.max_concurrent == 1
    # README: --max-concurrent 4, one trial per GPU node, as many nodes as the autoscaler starts.
    readme = (ROOT / "README.md").read_text()
    assert "--gpus-per-worker 1 --max-concurrent 4" in readme and gpu["max_workers"] == 4


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
