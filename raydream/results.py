"""Ranked trial tables: plain pandas over per-trial histories, no Ray needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

METRIC = "val_r2"
RANKED_CSV = "ranked_trials.csv"


@dataclass
class TrialRecord:
    """What a finished (or stopped, or failed) trial left behind.

    history: one row per reported epoch with at least `epoch` and `val_r2`;
        `checkpoint_path` where a checkpoint was saved.
    """

    trial_id: str
    config: dict[str, Any]
    history: pd.DataFrame
    error: str | None = None


def _lookup(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _short_names(keys: list[str]) -> dict[str, str]:
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (t if tails.count(t) == 1 else k) for k, t in zip(keys, tails)}


def rank_trials(records: list[TrialRecord], hyperparameters: list[str], max_epochs: int) -> pd.DataFrame:
    """One row per trial, best validation R^2 first.

    Columns: trial, the searched hyperparameters (short names), best_val_r2, best_epoch,
    val_pearson / val_spearman / val_mse at the best epoch, epochs (run), status
    ("completed", "stopped early" by the scheduler, or "error: ..."), checkpoint (of the
    best epoch).
    """
    names = _short_names(hyperparameters)
    rows = []
    for record in records:
        row: dict[str, Any] = {"trial": record.trial_id}
        row.update({names[k]: _lookup(record.config, k) for k in hyperparameters})
        history = record.history
        if history is not None and METRIC in history and history[METRIC].notna().any():
            best = history.loc[history[METRIC].idxmax()]
            epochs = int(history["epoch"].max())
            row.update(
                best_val_r2=float(best[METRIC]),
                best_epoch=int(best["epoch"]),
                val_pearson=float(best.get("val_pearson", float("nan"))),
                val_spearman=float(best.get("val_spearman", float("nan"))),
                val_mse=float(best.get("val_mse", float("nan"))),
                epochs=epochs,
                checkpoint=best.get("checkpoint_path"),
            )
        else:
            epochs = 0
            row.update(best_val_r2=float("nan"), best_epoch=0, epochs=0, checkpoint=None)
        if record.error:
            row["status"] = f"error: {record.error.strip().splitlines()[-1][:80]}"
        else:
            row["status"] = "completed" if epochs >= max_epochs else "stopped early"
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values("best_val_r2", ascending=False, na_position="last").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    order = ["rank", "trial", *names.values(), "best_val_r2", "best_epoch", "val_pearson",
             "val_spearman", "val_mse", "epochs", "status", "checkpoint"]
    return table[[c for c in order if c in table.columns]]


def format_table(table: pd.DataFrame, with_checkpoint: bool = False) -> str:
    """The ranked table as aligned text (checkpoint paths left out unless asked)."""
    shown = table if with_checkpoint else table.drop(columns=["checkpoint"], errors="ignore")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
