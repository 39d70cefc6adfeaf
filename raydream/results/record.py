"""The search record: what a search was (`SEARCH_FILE` in its experiment directory).

The search layer (`raydream.tuning.plan.Search`) writes it when a search starts; the ranked
table, the report and `--resume` read it. Besides the space's YAML (for `--resume`), the
record holds how a trial's config from Tune becomes the config the trial trained with (its
`resolution`, see `resolve_config`), so that reading an experiment needs no search space
parser, no model registry and no torch.
"""

from __future__ import annotations

import json
import os
from typing import Any

from raydream.core import storage

SEARCH_FILE = "raydream_search.json"


def write_record(experiment_dir: str | os.PathLike, record: dict[str, Any]) -> str:
    """Write a search's record (atomically) into its experiment directory or URI; returns
    where it went."""
    return storage.write_text(storage.join(experiment_dir, SEARCH_FILE), json.dumps(record, indent=2))


def resolve_config(config: dict[str, Any], resolution: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as Tune sampled it, made the config the trial trains with.

    resolution (JSON, from `SearchSpace.resolution` / `FamilySpace.resolution`):
        {"sections": [...], "decode": [dotted, ...], "conditional": {dotted: [[dotted, allowed, default], ...]}}
        for one family: keys to JSON-decode (a choice among lists travels through Tune as
        text), then keys to drop when a condition fails (a condition's key takes `default`
        when the config does not set it);
        {"family_key": KEY, "families": {NAME: resolution, ...}} for several: the family the
        trial drew (config[KEY]), its sub-config resolved and lifted to the top level, beside
        KEY and any other top-level key.
    """
    if "families" in resolution:
        family = config[resolution["family_key"]]
        others = {k: v for k, v in config.items() if k not in resolution["families"]}
        return {**others, **resolve_config(config[family], resolution["families"][family])}
    sections = resolution["sections"]
    out = {**config, **{s: dict(config.get(s) or {}) for s in sections}}
    for dotted in resolution["decode"]:
        section, key = dotted.split(".", 1)
        if isinstance(out[section].get(key), str):
            out[section][key] = json.loads(out[section][key])
    for dotted, conditions in resolution["conditional"].items():
        section, key = dotted.split(".", 1)
        for condition, allowed, default in conditions:
            where, name = condition.split(".", 1)
            value = out[where][name] if name in out[where] else default
            if value not in allowed:
                out[section].pop(key, None)
                break
    return out
