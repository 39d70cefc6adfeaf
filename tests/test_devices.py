"""Device order, checked without a GPU: everything a Train worker builds or loads lives on the
worker's device. PyTorch's "meta" device stands in for a GPU here: a tensor left on the CPU
shows up as a CPU tensor, as it would on a CUDA worker, where it crashes the first step or
collective.
"""

import pytest
import torch
import torch.distributed as dist

from raydream.train.checkpoint import save_checkpoint
from raydream.train import loop
from raydream.train.config import TrainConfig, build_model_config
from raydream.train.steps import model_and_recipe

META = torch.device("meta")
LENGTH = 110  # bases of a nominal DREAM sequence


def _tensors(recipe, model) -> dict[str, torch.Tensor]:
    """Every tensor a worker trains with: weights, buffers, optimiser state, averaged model."""
    found = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, state in enumerate(recipe.optimizer.state.values()):
        found.update({f"optimizer.{i}.{k}": v for k, v in state.items() if torch.is_tensor(v) and k != "step"})
    averaged = getattr(recipe, "averaged", None)
    if averaged is not None:
        found.update({f"averaged.{k}": v for k, v in averaged.state_dict().items()})
    return found


@pytest.mark.parametrize("optimizer", ["adam_sgd", "adamw_onecycle", "cosine_swa"])
def test_a_resumed_worker_keeps_weights_optimiser_state_and_averaged_model_on_its_device(tmp_path, optimizer):
    # A checkpoint after one step (so the optimiser has state) and, for cosine_swa, an average.
    tcfg = TrainConfig(optimizer=optimizer, swa_start=1, batch_size=4)
    mcfg = build_model_config("resnet", {"channels": 8, "num_blocks": 2}, tcfg)
    model, recipe, start, _ = model_and_recipe("resnet", mcfg, tcfg, 1, torch.device("cpu"))
    assert start == 1
    recipe.start_epoch(1)
    recipe.step(model(torch.rand(4, 4, LENGTH)).float().pow(2).mean())
    evaluated = recipe.eval_model(model, lambda: [torch.rand(4, 4, LENGTH)])
    save_checkpoint(tmp_path, evaluated, "resnet", mcfg, tcfg, 1, {"val_r2": 0.1, "best_val_r2": 0.1},
                    optimizer_state=recipe.state_dict(), train_model=model if evaluated is not model else None)

    model, recipe, start, best = model_and_recipe("resnet", mcfg, tcfg, 1, META, str(tmp_path))
    assert (start, best) == (2, 0.1)
    tensors = _tensors(recipe, model)
    assert any(k.startswith("optimizer.") for k in tensors)
    assert (optimizer != "cosine_swa") or any(k.startswith("averaged.") for k in tensors)
    assert {k: str(v.device) for k, v in tensors.items() if v.device != META} == {}


def test_the_loss_sum_is_reduced_on_the_workers_device(monkeypatch):
    class Reduced(Exception):  # a meta tensor holds no values to read back: stop at the collective
        pass

    seen = []

    def all_reduce(tensor):
        seen.append(tensor.device)
        raise Reduced

    monkeypatch.setattr(loop, "_is_distributed", lambda: True)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    with pytest.raises(Reduced):
        loop._sum_across_workers(META, 1.5, 3.0)
    assert seen == [META]
