"""`python -m raydream.report EXPERIMENT_DIR`: PNG plots of a search, without starting Ray.

Four figures, written next to the experiment (or to `--out`):

* `pred_vs_measured.png`: the best trial's checkpoint on the held-out split, predicted vs.
  measured expression coloured by point density (a Gaussian KDE), as in the team report.
* `learning_curves.png`: the validation metric the search ranked by (R^2 unless it was given
  `--metric`) per epoch of every trial; trials ASHA stopped end early with a cross.
* `best_so_far.png`: best validation score so far against trials finished and against epochs
  trained (the compute the search has spent).
* `hyperparameters.png`: each searched hyperparameter against the trial's best validation score.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from raydream.core.errors import ArgumentParser, DataError, run_cli
from raydream.core.files import write_bytes_atomic
from raydream.results.table import (DEFAULT_METRIC, METRIC_LABELS, METRICS, SEARCH_FILE, best_column, local_experiment,
                              read_experiment, short_names)

KDE_POINTS = 5000  # points drawn in the density plot (a random subset of larger splits)
FIGURES = ("pred_vs_measured", "learning_curves", "best_so_far", "hyperparameters")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Save a figure as PNG through a temporary file renamed into place."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def _label(metric: str) -> str:
    """A metric's name on an axis (R$^2$ in mathtext)."""
    return "validation " + METRIC_LABELS[metric].replace("R^2", "R$^2$").replace("rho", r"$\rho$")


def search_progress(table: pd.DataFrame, history: dict[str, pd.DataFrame],
                    metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Trials in the order they finished, with the best score by `metric` so far and the
    epochs spent so far.

    Columns: trial, finished (timestamp of its last report), epochs, best (the trial's best
    score), cumulative_epochs, best_so_far.
    """
    rows = []
    for _, row in table.iterrows():
        frame = history.get(row["trial"])
        if frame is None or not len(frame):
            continue
        finished = float(frame["timestamp"].max()) if "timestamp" in frame else float(len(rows))
        rows.append({"trial": row["trial"], "finished": finished, "epochs": int(row["epochs"]),
                     "best": float(row[best_column(metric)])})
    progress = pd.DataFrame(rows, columns=["trial", "finished", "epochs", "best"])
    progress = progress.sort_values("finished", kind="stable").reset_index(drop=True)
    progress["cumulative_epochs"] = progress["epochs"].cumsum()
    best = progress["best"]
    progress["best_so_far"] = best.cummin() if METRICS[metric] == "min" else best.cummax()
    return progress


def plot_learning_curves(table: pd.DataFrame, history: dict[str, pd.DataFrame], max_epochs: int, path: Path,
                         metric: str = DEFAULT_METRIC) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    best = table.iloc[0]["trial"] if len(table) else None
    for _, row in table.iloc[::-1].iterrows():  # best drawn last, on top
        frame = history.get(row["trial"])
        if frame is None:
            continue
        stopped = row["status"] != "completed"
        is_best = row["trial"] == best
        ax.plot(frame["epoch"], frame[metric], color="C3" if is_best else ("0.6" if stopped else "C0"),
                lw=2.2 if is_best else 1.0, alpha=1.0 if is_best else 0.8,
                label=f"best: {row['trial']}" if is_best else None)
        if stopped:
            ax.plot(frame["epoch"].iloc[-1], frame[metric].iloc[-1], "x", color="0.3", ms=6)
    ax.plot([], [], "x", color="0.3", label=f"stopped early ({(table['status'] != 'completed').sum()} trials)")
    ax.set(xlabel="epoch", ylabel=_label(metric), title=f"Learning curves of {len(history)} trials",
           xlim=(0.8, max(max_epochs, 1) + 0.2))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper right" if METRICS[metric] == "min" else "lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, path)


def plot_best_so_far(progress: pd.DataFrame, path: Path, metric: str = DEFAULT_METRIC) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    n = np.arange(1, len(progress) + 1)
    axes[0].step(n, progress["best_so_far"], where="post", color="C3")
    axes[0].scatter(n, progress["best"], s=14, color="C0", zorder=3, label="trial's best")
    axes[0].set(xlabel="trials finished", ylabel=f"best {_label(metric)} so far")
    axes[1].step(progress["cumulative_epochs"], progress["best_so_far"], where="post", color="C3")
    axes[1].scatter(progress["cumulative_epochs"], progress["best"], s=14, color="C0", zorder=3)
    axes[1].set(xlabel="epochs trained (all trials)")
    axes[0].legend(loc="best", fontsize=8)
    for ax in axes:
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("Search progress")
    return save_figure(plt, fig, path)


def plot_hyperparameters(table: pd.DataFrame, keys: list[str], path: Path, metric: str = DEFAULT_METRIC) -> Path:
    plt = pyplot()
    shown = [k for k in keys if k in table.columns]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False)
    scores = table[best_column(metric)].to_numpy(dtype=float)
    for ax, key in zip(axes.flat, shown):
        values = table[key]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and not values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
            ax.scatter(numeric, scores, s=16, color="C0")
            positive = numeric[numeric > 0]
            if len(positive) == len(numeric) and positive.max() / positive.min() > 20:
                ax.set_xscale("log")
            else:
                ax.xaxis.set_major_locator(plt.MaxNLocator(4))
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        else:  # categorical: one column of points per value
            labels = sorted({str(v) for v in values})
            position = {label: i for i, label in enumerate(labels)}
            x = values.map(lambda v, at=position: at[str(v)]).to_numpy(dtype=float)
            jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(x))
            ax.scatter(x + jitter, scores, s=16, color="C0")
            ax.set_xticks(range(len(labels)), labels, rotation=30 if max(map(len, labels)) > 4 else 0, fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"best {_label(metric).replace('validation', 'val')}")
    fig.suptitle(f"Hyperparameters vs. best {_label(metric)}")
    fig.tight_layout()
    return save_figure(plt, fig, path)


def plot_pred_vs_measured(measured: np.ndarray, predicted: np.ndarray, title: str, path: Path) -> Path:
    """Predicted vs. measured expression, coloured by a Gaussian KDE of the point density."""
    from scipy.stats import gaussian_kde

    from raydream.core.metrics import regression_metrics

    plt = pyplot()
    scores = regression_metrics(measured, predicted)
    rng = np.random.default_rng(0)
    keep = rng.choice(len(measured), size=min(len(measured), KDE_POINTS), replace=False)
    x, y = measured[keep], predicted[keep]
    try:
        density = gaussian_kde(np.vstack([x, y]))(np.vstack([x, y]))
    except (np.linalg.LinAlgError, ValueError):  # constant predictions: no 2-D density
        density = np.ones_like(x)
    order = np.argsort(density)
    fig, ax = plt.subplots(figsize=(5, 4.6))
    points = ax.scatter(x[order], y[order], c=density[order], s=6, cmap="viridis")
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([low, high], [low, high], "--", color="0.4", lw=1)
    ax.set(xlabel="measured expression", ylabel="predicted expression",
           title=f"{title}\nR$^2$ {scores['r2']:.3f}, Pearson {scores['pearson']:.3f}, "
                 f"Spearman {scores['spearman']:.3f} (n={len(measured):,})")
    fig.colorbar(points, ax=ax, label="density")
    return save_figure(plt, fig, path)


def save_figure(plt, fig, path: Path) -> Path:
    """Save a figure as PNG (atomically) and close it."""
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _best_predictions(table: pd.DataFrame, data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    from raydream.results.inference import predict
    from raydream.data.prepare import read_split

    best = table.iloc[0]
    checkpoint = best.get("checkpoint")
    if not isinstance(checkpoint, str) or not Path(checkpoint).is_dir():
        raise DataError(f"best trial {best['trial']}: its checkpoint {checkpoint!r} is not on this machine")
    frame = read_split(data_dir, split).to_pandas()
    predicted = predict(checkpoint, frame["sequence"].to_numpy())
    return frame["expression"].to_numpy(dtype=float), predicted, f"best trial {best['trial']} on the {split} split"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m raydream.report",
                                description="Plot a search's results as PNG files, without starting Ray.")
    p.add_argument("experiment", help="experiment directory or URI (STORAGE_PATH/NAME)")
    p.add_argument("--out", default=None, help="directory for the PNG files (default: EXPERIMENT/report)")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="split the best checkpoint is plotted on (default test, held out from the search)")
    p.add_argument("--data", default=None,
                   help="the dataset to plot the best checkpoint on (a prepared directory or URI, or a DREAM file), "
                        "instead of the one the search recorded: for a dataset that has moved since")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    experiment = local_experiment(args.experiment)
    found = read_experiment(experiment)  # every trial read once, for the table and the curves
    table = found.table()
    if table.empty or not np.isfinite(table[best_column(found.metric)]).any():
        raise DataError(f"{experiment}: no trial has reported a validation score yet")
    out = Path(args.out) if args.out else experiment / "report"
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a directory")
    created = not out.exists()
    try:  # made inside: a signal that lands just after mkdir still finds it removed
        out.mkdir(parents=True, exist_ok=True)
        # Every figure is drawn into a staging directory first and moved into place only when
        # all are drawn: a failure leaves no figure of this run behind.
        with tempfile.TemporaryDirectory(dir=out, prefix=".report-") as staging:
            drawn = _draw(found, table, experiment, Path(staging), args.split, args.data)
            written = []
            for path in drawn:
                os.replace(path, out / path.name)
                written.append(out / path.name)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    for path in written:
        print(path)
    return 0


def _plot_data(experiment: Path, recorded: str | None, given: str | None) -> str | None:
    """The dataset the best checkpoint is plotted on: `given` (--data), else the one the
    search recorded, which must still be readable where it was."""
    from raydream.data.prepare import load_manifest, resolve_dataset

    if given is not None:
        return str(resolve_dataset(given))
    if recorded is None:
        return None
    try:
        load_manifest(recorded)
    except DataError as err:
        raise DataError(f"{experiment}: the search's dataset cannot be read where it was recorded ({err}); give "
                        f"where it is now with --data DIR") from None
    return recorded


def _draw(found, table: pd.DataFrame, experiment: Path, out: Path, split: str, data: str | None = None) -> list[Path]:
    """Draw the report's figures into `out`; returns their paths. `data`: --data."""
    metric = found.metric
    history = {r.trial_id: r.history for r in found.records if r.history is not None and metric in r.history}
    keys = list(short_names(found.keys).values())
    written = [
        plot_learning_curves(table, history, int(found.max_epochs or table["epochs"].max()),
                             out / "learning_curves.png", metric),
        plot_best_so_far(search_progress(table, history, metric), out / "best_so_far.png", metric),
        plot_hyperparameters(table, keys, out / "hyperparameters.png", metric),
    ]
    data_dir = _plot_data(experiment, found.info.get("data"), data)
    if data_dir is not None:
        measured, predicted, title = _best_predictions(table, data_dir, split)
        written.insert(0, plot_pred_vs_measured(measured, predicted, title, out / "pred_vs_measured.png"))
    else:
        print(f"raydream: {experiment} has no {SEARCH_FILE} naming its data; skipped pred_vs_measured.png")
    return written


def console() -> int:
    """The `raydream-report` command: the same as `python -m raydream.report`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
