"""Ranked trial tables: plain pandas over per-trial histories, no Ray needed.

`python -m raydream.results EXPERIMENT_DIR` rebuilds the ranked table of a finished or
interrupted search from the files Tune leaves in each trial directory (`params.json`,
`progress.csv`, `error.txt`) and the checkpoints' `meta.json`, without starting Ray.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from raydream.core import storage
from raydream.core.errors import ArgumentParser, DataError, run_cli
from raydream.core.files import is_within, write_text_atomic
from raydream.results.record import SEARCH_FILE, resolve_config

# The validation metrics a search may rank and stop its trials by, and which way is better.
METRICS = {"val_r2": "max", "val_pearson": "max", "val_spearman": "max", "val_mse": "min"}
DEFAULT_METRIC = "val_r2"
METRIC_LABELS = {"val_r2": "R^2", "val_pearson": "Pearson r", "val_spearman": "Spearman rho", "val_mse": "MSE"}
RANKED_CSV = "ranked_trials.csv"
BASELINES_FILE = "baselines.json"  # the baselines fitted on the search's splits (raydream.train.baselines)
# `--repeats`: the top configurations trained again with other seeds, as a Tune experiment of
# their own inside the search's directory; REPEAT_OF in each run's config names the trial it
# repeats, and REPEATS_CSV is their summary (mean and sd per configuration).
REPEATS_DIR = "repeats"
REPEAT_OF = "repeat_of"
REPEATS_CSV = "repeats.csv"


@dataclass
class TrialRecord:
    """What a finished (or stopped, or failed) trial left behind.

    history: one row per epoch with at least `epoch` and the validation metrics;
        `checkpoint_path` where a checkpoint was saved. An epoch reported twice (run again
        by a trial restored from an earlier checkpoint) appears once, as last reported.
    """

    trial_id: str
    config: dict[str, Any]
    history: pd.DataFrame
    error: str | None = None
    state: str | None = None  # Tune's status in the experiment state, when there is one
    failures: int = 0  # times the trial failed and was retried
    path: str | None = None  # the trial's directory


def _lookup(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def short_names(keys: list[str]) -> dict[str, str]:
    """Dotted key -> its column in the ranked table: the last part, unless two keys share it."""
    tails = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (t if tails.count(t) == 1 else k) for k, t in zip(keys, tails)}


def check_metric(metric: str, where: str = "--metric") -> str:
    """`metric` if it is one of METRICS.

    Raises:
        DataError: naming `where` and the metrics there are.
    """
    if metric not in METRICS:
        raise DataError(f"{where}: {metric!r} is not a metric a search ranks by; expected one of "
                        f"{', '.join(METRICS)}")
    return metric


def best_column(metric: str) -> str:
    """The ranked table's column of a trial's best score by `metric` (best_val_r2, ...)."""
    return f"best_{metric}"


def ranked_column(table: pd.DataFrame) -> str:
    """The column a ranked table was ranked by (its best_<metric> column)."""
    found = [c for c in table.columns if c.startswith("best_val_")]
    return found[0] if found else best_column(DEFAULT_METRIC)


def better(metric: str, ours: float, theirs: float) -> bool:
    """Whether score `ours` is better than `theirs` by `metric` (higher, or lower for MSE)."""
    return ours < theirs if METRICS[metric] == "min" else ours > theirs


def sort_best_first(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """`table` sorted by `column`, best first: lowest first for an MSE column (`val_mse`,
    `best_val_mse`), else highest first; missing values last, ties in their order."""
    lowest_first = METRICS.get(column.removeprefix("best_")) == "min"
    return table.sort_values(column, ascending=lowest_first, na_position="last", kind="stable")


def rank_trials(records: list[TrialRecord], hyperparameters: list[str], max_epochs: int,
                metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per trial, the best by `metric` first (highest; lowest for val_mse).

    Columns: trial, the searched hyperparameters (short names), best_<metric> (the trial's
    best epoch by `metric`), best_epoch, the other validation metrics at that epoch, epochs
    (run), status ("completed", "stopped early" by the scheduler, or "error: ..."),
    checkpoint (of the best epoch).
    """
    check_metric(metric)
    names = short_names(hyperparameters)
    column = best_column(metric)
    others = [m for m in METRICS if m != metric]
    rows = []
    for record in records:
        row: dict[str, Any] = {"trial": record.trial_id}
        row.update({names[k]: _lookup(record.config, k) for k in hyperparameters})
        history = record.history
        if history is not None and metric in history and history[metric].notna().any():
            scores = history[metric]
            best = history.loc[scores.idxmin() if METRICS[metric] == "min" else scores.idxmax()]
            epochs = int(history["epoch"].max())
            row.update({column: float(best[metric]), "best_epoch": int(best["epoch"])})
            row.update({m: float(best.get(m, float("nan"))) for m in others})
            row.update(epochs=epochs, checkpoint=best.get("checkpoint_path"))
        else:
            epochs = 0
            row.update({column: float("nan"), "best_epoch": 0, "epochs": 0, "checkpoint": None})
        row["status"] = _status(record, epochs, max_epochs)
        row["failures"] = record.failures
        rows.append(row)
    order = ["rank", "trial", *names.values(), column, "best_epoch", *others,
             "epochs", "status", "failures", "checkpoint"]
    table = pd.DataFrame(rows)
    if table.empty:  # no trial yet: the columns, so that a reader can select what it looks for
        return pd.DataFrame(columns=[c for c in order if c != "failures"])
    table = sort_best_first(table, column).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    if not table["failures"].any():
        order.remove("failures")
    return table[[c for c in order if c in table.columns]]


def _status(record: TrialRecord, epochs: int, max_epochs: int) -> str:
    """completed / stopped early (by the scheduler) / interrupted (the search stopped while the
    trial was pending or running; `--resume` continues it) / error: last line of its error."""
    if record.state == "ERROR" or (record.state is None and record.error):
        return f"error: {(record.error or 'failed').strip().splitlines()[-1][:80]}"
    if record.state in ("PENDING", "RUNNING", "PAUSED"):
        return "interrupted"
    return "completed" if epochs >= max_epochs else "stopped early"


def _cell(value: Any) -> Any:
    """A table cell as shown: numbers to 4 significant digits, missing values as "-"."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def format_table(table: pd.DataFrame, with_checkpoint: bool = False, width: int | None = None) -> str:
    """The ranked table as aligned text (checkpoint paths left out unless asked); missing
    values (a failed trial's scores, a baseline's hyperparameters) show as "-".

    width: the longest line wanted. A wider table is cut into blocks of columns, one under
    the other, each beginning with the columns that name the row (rank, trial, family).
    """
    if table.empty:
        return "(no trials)"
    shown = (table if with_checkpoint else table.drop(columns=["checkpoint"], errors="ignore")).map(_cell)
    text = shown.to_string(index=False)
    if width is None or max(map(len, text.splitlines()), default=0) <= width:
        return text
    names = [c for c in ("rank", "trial", "family") if c in shown.columns]
    rest = [c for c in shown.columns if c not in names]
    blocks: list[list[str]] = []
    for column in rest:
        if blocks:
            trial = shown[names + blocks[-1] + [column]].to_string(index=False)
            if max(map(len, trial.splitlines())) <= width:
                blocks[-1].append(column)
                continue
        blocks.append([column])
    return "\n\n".join(shown[names + block].to_string(index=False) for block in blocks)


BASELINE_STATUS = "baseline"  # the status of a baseline's row in a ranked table


def with_baselines(table: pd.DataFrame, record: dict[str, Any] | None, sort: str | None = None) -> pd.DataFrame:
    """The ranked table with a row for each baseline of `record` (see `read_baselines`), put
    among the trials by its validation score: a baseline row has no rank, its baseline's name
    as trial, its validation metrics, and status "baseline".

    sort: the column the table is sorted by (default the one it was ranked by); a baseline
    has no value in a column that is not a validation metric, and such rows go last.
    """
    if not record or table.empty:
        return table
    column = sort or ranked_column(table)
    if "rank" in table.columns:
        table = table.astype({"rank": object})
    rows = []
    for name, entry in record["baselines"].items():
        scores = {f"val_{k}": (float("nan") if v is None else float(v)) for k, v in entry["val"].items()}
        row: dict[str, Any] = {"rank": None, "trial": name, "status": BASELINE_STATUS}
        for c in table.columns:
            metric = c.removeprefix("best_")
            if metric in scores:
                row[c] = scores[metric]
        rows.append(row)
    combined = pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)
    if column not in combined.columns:
        return combined
    return sort_best_first(combined, column).reset_index(drop=True)


def local_experiment(location: str | os.PathLike) -> Path:
    """An experiment directory on this machine: `location` itself, or for an object-store URI
    its mirror under the raydream cache, brought up to date (only new files are fetched).

    Raises:
        DataError: the URI holds nothing or cannot be read.
    """
    if not storage.is_remote(location):
        return Path(location)
    from raydream.data.prepare import cache_root

    local = storage.mirror(str(location), storage.local_mirror_dir(str(location), cache_root()))
    print(f"raydream: {location} copied to {local}", file=sys.stderr)
    return local


def _checkpoints_by_epoch(trial_dir: Path) -> dict[int, str]:
    """Epoch -> directory of every checkpoint Tune kept in a trial directory (its
    `checkpoint_NNNNNN` directories; the Train runs' own checkpoints below them are not
    the trial's).

    Raises:
        DataError: a checkpoint's meta.json is damaged (naming it).
    """
    found = {}
    for meta in trial_dir.glob("checkpoint_*/meta.json"):
        record = _read_json(meta)
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int):
            raise DataError(f"{meta}: no epoch; the checkpoint is damaged")
        found[epoch] = str(meta.parent)
    return found


def trial_states(experiment_dir: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """Trial directory name -> (Tune status, failures) from the newest experiment state file.

    Tune rewrites `experiment_state-*.json` as a search runs and once more when it stops, so
    a trial still RUNNING or PENDING there was cut off by an interruption. Empty when there
    is no readable state file.
    """
    files = sorted(Path(experiment_dir).glob("experiment_state-*.json"))  # named by start time
    if not files:
        return {}
    try:
        entries = json.loads(files[-1].read_text())["trial_data"]
        states = {}
        for trial_json, runtime_json in entries:
            trial, runtime = json.loads(trial_json), json.loads(runtime_json)
            states[trial["relative_logdir"]] = (trial["status"], int(runtime.get("num_failures") or 0))
        return states
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _checkpoint_paths(trial_dir: Path, history: pd.DataFrame) -> list[str | None]:
    """Each reported epoch's checkpoint directory, where it is still on disk (else None).

    Tune names the checkpoint of each report in `checkpoint_dir_name` and deletes those it
    does not keep; older experiments are matched by the epoch in the checkpoints' meta.json.
    """
    if "checkpoint_dir_name" in history.columns:
        paths = [trial_dir / str(name) if isinstance(name, str) else None for name in history["checkpoint_dir_name"]]
        return [str(p) if p is not None and p.is_dir() else None for p in paths]
    if "checkpoint_path" in history.columns:
        return [p if isinstance(p, str) and Path(p).is_dir() else None for p in history["checkpoint_path"]]
    kept = _checkpoints_by_epoch(trial_dir)
    return [kept.get(int(e)) for e in history["epoch"]]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); the experiment's files are damaged") from None


def read_baselines(experiment: Path) -> dict[str, Any] | None:
    """The baselines a search fitted on its splits (`BASELINES_FILE`), or None if it has none
    (a search that did not finish, or one from before baselines were fitted).

    Raises:
        DataError: the file is damaged.
    """
    path = Path(experiment) / BASELINES_FILE
    if not path.is_file():
        return None
    record = _read_json(path)
    problem = _baselines_problem(record)
    if problem:
        raise DataError(f"{path}: not a baselines record ({problem}); the experiment's files are damaged")
    return record


def _baselines_problem(record: Any) -> str | None:
    """What keeps `record` from being shown as baselines, or None."""
    if not isinstance(record, dict) or not isinstance(record.get("baselines"), dict):
        return "no baselines mapping"
    for key in ("fit_rows", "val_rows", "test_rows"):
        if not isinstance(record.get(key), int) or isinstance(record.get(key), bool):
            return f"{key} is not a row count"
    for name, entry in record["baselines"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("val"), dict):
            return f"{name!r} has no validation scores"
        if not isinstance(entry.get("test"), (dict, type(None))):
            return f"{name!r} has bad test scores"
        if "alpha" in entry and not (isinstance(entry["alpha"], (int, float)) and isinstance(entry.get("ks"), list)
                                     and entry["ks"] and all(isinstance(k, int) for k in entry["ks"])):
            return f"{name!r} has a bad alpha or ks"
    return None


def _metric_text(scores: dict[str, Any] | None) -> str:
    if not scores:
        return "-"
    return ", ".join(f"{name} {value:.4f}" if isinstance(value, (int, float)) else f"{name} -"
                     for name, value in scores.items() if name in ("r2", "pearson", "spearman"))


def format_baselines(record: dict[str, Any]) -> str:
    """The baselines as lines under a ranked table: each one's validation and test scores."""
    lines = [f"Baselines on the same splits (fit on {record['fit_rows']:,} training rows, scored on "
             f"{record['val_rows']:,} validation and {record['test_rows']:,} test rows):"]
    for name, entry in record["baselines"].items():
        extra = f" (k = {min(entry['ks'])}-{max(entry['ks'])}, alpha {entry['alpha']:g})" if "alpha" in entry else ""
        lines.append(f"  {name}{extra}: val {_metric_text(entry.get('val'))}; test {_metric_text(entry.get('test'))}")
    return "\n".join(lines)


def read_progress(progress: Path) -> pd.DataFrame:
    """A trial's progress.csv (one row per report), refusing a damaged or truncated one.

    Tune appends a line per report and its result.json a JSON line per report; a file cut
    short (a copy stopped midway, a full disk) would otherwise turn a completed trial into
    one "stopped early" with wrong scores.

    Raises:
        DataError: naming the file and what is wrong.
    """
    raw = progress.read_bytes()
    if not raw.endswith(b"\n"):
        raise DataError(f"{progress}: truncated (its last line is incomplete); the experiment's files are damaged")
    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype={"trial_id": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{progress}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if "epoch" in frame.columns and frame["epoch"].isna().any():
        line = int(frame.index[frame["epoch"].isna()][0]) + 2
        raise DataError(f"{progress}: line {line} has no epoch; the experiment's files are damaged")
    results = progress.with_name("result.json")
    if results.is_file():
        reported = results.read_bytes().count(b"\n")
        if reported > len(frame) + 1:  # one report may be between the two files' writes
            raise DataError(f"{progress}: {len(frame)} rows, but {results.name} holds {reported} reports: truncated")
    return frame


def read_trial(trial_dir: str | os.PathLike) -> TrialRecord:
    """A trial's record from its directory: config, per-epoch history with checkpoint paths, error.

    Raises:
        DataError: a file of the trial is damaged (naming it).
    """
    trial_dir = Path(trial_dir)
    config = _read_json(trial_dir / "params.json")
    if not isinstance(config, dict):
        raise DataError(f"{trial_dir / 'params.json'}: expected a JSON object of the trial's config")
    history = None
    progress = trial_dir / "progress.csv"
    if progress.is_file() and progress.stat().st_size:
        frame = read_progress(progress)
        if "epoch" in frame.columns:
            # A trial restored from a checkpoint (a retry, or --resume after Ctrl-C) runs again
            # the epochs it had reported after that checkpoint, and Tune appends their rows:
            # the later rows are the history the trial went on from.
            frame = frame.drop_duplicates("epoch", keep="last").reset_index(drop=True)
            history = frame.assign(checkpoint_path=_checkpoint_paths(trial_dir, frame))
    error_file = trial_dir / "error.txt"
    error = error_file.read_text() or "failed" if error_file.is_file() else None
    trial_id = trial_dir.name
    if history is not None and "trial_id" in history.columns:
        trial_id = str(history["trial_id"].iloc[-1])
    return TrialRecord(trial_id, config, history, error, path=str(trial_dir))


@dataclass
class Experiment:
    """What a search's directory holds: its trials, the searched keys (dotted), the epoch
    budget, the search's SEARCH_FILE record ({} when it has none), and the metric it ranked
    its trials by (DEFAULT_METRIC for a search from before `--metric`)."""

    records: list[TrialRecord]
    keys: list[str]
    max_epochs: int
    info: dict[str, Any]
    metric: str = DEFAULT_METRIC

    def table(self) -> pd.DataFrame:
        """The ranked table (see `rank_trials`)."""
        return rank_trials(self.records, self.keys, self.max_epochs, self.metric)


def read_experiment(experiment_dir: str | os.PathLike) -> Experiment:
    """Every trial of a search's experiment directory, read once.

    The searched keys and epoch budget come from the search's SEARCH_FILE; for an
    experiment without one, the keys whose values differ between trials and the largest
    `train.max_epochs` are used.

    Raises:
        DataError: the directory holds neither a SEARCH_FILE nor any trial.
    """
    directory = Path(experiment_dir)
    trials = sorted(p for p in directory.iterdir() if (p / "params.json").is_file()) if directory.is_dir() else []
    info_path = directory / SEARCH_FILE
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: is a file, not a raydream experiment directory")
    if not info_path.is_file() and not trials:
        raise DataError(f"{directory}: not a raydream experiment directory (no {SEARCH_FILE} and no trials)")
    records = [read_trial(t) for t in trials]
    states = trial_states(directory)
    for trial, record in zip(trials, records):
        record.state, record.failures = states.get(trial.name, (None, 0))
    if info_path.is_file():
        info = _read_json(info_path)
        if not isinstance(info, dict) or not isinstance(info.get("sampled_keys"), list) \
                or not isinstance(info.get("max_epochs"), int):
            raise DataError(f"{info_path}: expected a search record with 'sampled_keys' and 'max_epochs'")
        keys, max_epochs = info["sampled_keys"], info["max_epochs"]
        metric = info.get("metric", DEFAULT_METRIC)
        if metric not in METRICS:
            raise DataError(f"{info_path}: metric {metric!r} is not one of {', '.join(METRICS)}; the record is damaged")
        resolution = info.get("resolution")
        if resolution:  # as the trials used them: lists decoded, inactive keys blank
            try:
                for record in records:
                    record.config = resolve_config(record.config, resolution)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise DataError(f"{info_path}: its recorded resolution does not fit the trials' configs "
                                f"({type(err).__name__}: {err}); the record is damaged") from None
    else:
        info, metric = {}, DEFAULT_METRIC
        keys = _varying_keys([r.config for r in records])
        max_epochs = max(int(_lookup(r.config, "train.max_epochs") or 0) for r in records)
    return Experiment(records, keys, max_epochs, info, metric)


def experiment_table(experiment_dir: str | os.PathLike) -> pd.DataFrame:
    """The ranked table of a search's experiment directory (see `read_experiment`, `rank_trials`)."""
    return read_experiment(experiment_dir).table()


def repeat_runs(experiment_dir: str | os.PathLike, metric: str = DEFAULT_METRIC) -> pd.DataFrame | None:
    """The runs of a search's `--repeats` (see REPEATS_DIR), one row each as `rank_trials`
    gives them, with a REPEAT_OF column; None when the search has none."""
    directory = Path(experiment_dir) / REPEATS_DIR
    if not directory.is_dir() or not any((p / "params.json").is_file() for p in directory.iterdir()):
        return None
    found = read_experiment(directory)
    return rank_trials(found.records, [REPEAT_OF], found.max_epochs, metric)


def summarize_repeats(runs: pd.DataFrame, table: pd.DataFrame, metric: str,
                      test_scores: dict[str, float] | None = None) -> pd.DataFrame:
    """Mean and sd (n - 1) over the seeds of each repeated configuration, in the order of the
    search's ranked `table`.

    runs: `repeat_runs`; test_scores: the test score by `metric` of each run's best
    checkpoint (by run trial id), where it was scored. Columns: trial (the search's trial),
    search_best_<metric> (its score in the search), seeds (runs with a score),
    mean_<metric>, sd_<metric>, and with test scores mean_test_<m>, sd_test_<m>.
    """
    column, key = best_column(metric), metric.removeprefix("val_")
    rows = []
    for trial in table["trial"]:
        mine = runs[runs[REPEAT_OF] == trial]
        if mine.empty:
            continue
        scores = mine[column].dropna()
        row = {"trial": trial, f"search_{column}": float(table.loc[table["trial"] == trial, column].iloc[0]),
               "seeds": len(scores), f"mean_{metric}": scores.mean(), f"sd_{metric}": scores.std(ddof=1)}
        if test_scores is not None:
            tested = pd.Series([test_scores[t] for t in mine["trial"] if t in test_scores], dtype=float)
            row.update({f"mean_test_{key}": tested.mean(), f"sd_test_{key}": tested.std(ddof=1)})
        rows.append(row)
    return pd.DataFrame(rows)


def format_repeats(summary: pd.DataFrame, metric: str) -> str:
    """The repeats' summary as aligned text, each score as mean +- sd."""
    key, label = metric.removeprefix("val_"), METRIC_LABELS[metric]
    shown = pd.DataFrame({"trial": summary["trial"],
                          f"search's val {label}": summary[f"search_{best_column(metric)}"].map(_cell),
                          "seeds": summary["seeds"],
                          f"val {label}": [_mean_sd(m, s) for m, s in zip(summary[f"mean_{metric}"],
                                                                           summary[f"sd_{metric}"])]})
    if f"mean_test_{key}" in summary.columns:
        shown[f"test {label}"] = [_mean_sd(m, s) for m, s in zip(summary[f"mean_test_{key}"],
                                                                  summary[f"sd_test_{key}"])]
    return shown.to_string(index=False)


def read_repeats_csv(path: Path, metric: str) -> pd.DataFrame:
    """The REPEATS_CSV a search with `--repeats` wrote (see `summarize_repeats`).

    Raises:
        DataError: it is damaged, or lacks the columns of `metric`.
    """
    try:
        summary = pd.read_csv(path, dtype={"trial": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    needed = ["trial", f"search_{best_column(metric)}", "seeds", f"mean_{metric}", f"sd_{metric}"]
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the experiment's files are damaged")
    return summary


def _mean_sd(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.4f} +- {sd:.4f}" if not pd.isna(sd) else f"{mean:.4f} (one seed)"


def _varying_keys(configs: list[dict]) -> list[str]:
    """Dotted model_config/train keys whose values differ between the configs."""
    keys: list[str] = []
    for section in ("model_config", "train"):
        names = dict.fromkeys(k for c in configs for k in (c.get(section) or {}))
        for name in names:
            values = {json.dumps(_lookup(c, f"{section}.{name}"), sort_keys=True) for c in configs}
            if len(values) > 1:
                keys.append(f"{section}.{name}")
    return keys


def refuse_experiment_file(output: str | os.PathLike, experiment: str | os.PathLike, flag: str) -> None:
    """Refuse an output that would replace one of the experiment's own files (a trial's
    files, checkpoints, Tune's state, the search record); a new file beside them is fine.

    Raises:
        DataError: naming the flag and the file.
    """
    out, root = Path(output), Path(experiment)
    if not root.is_dir() or not is_within(out, root):
        return
    inside_trial = out.resolve().parent != root.resolve()
    if inside_trial or (out.exists() and out.name != RANKED_CSV):
        raise DataError(f"{flag} {output}: would write over the experiment's own files in {experiment}; "
                        f"write it elsewhere")


def markdown_table(table: pd.DataFrame) -> str:
    """The table as GitHub Markdown."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.4g}"
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m raydream.results",
                                description="Print the ranked trial table of a search, without starting Ray.")
    p.add_argument("experiment", help="experiment directory or URI (STORAGE_PATH/NAME)")
    p.add_argument("--top", type=int, default=None, help="show the best K trials only")
    p.add_argument("--columns", default=None, help="comma-separated columns to show (default: all but checkpoint)")
    p.add_argument("--sort", default=None, help="column to sort by, best first (default: the metric the search "
                   "ranked by, best_val_r2 unless it was given --metric; MSE columns sort lowest first)")
    p.add_argument("--csv", default=None, help="also write the table of trials (all columns) as CSV here")
    p.add_argument("--markdown", default=None,
                   help="also write the shown table, with the baselines' rows, as Markdown here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    local = local_experiment(args.experiment)
    for flag, out in (("--csv", args.csv), ("--markdown", args.markdown)):
        if out:
            refuse_experiment_file(out, local, flag)
    found = read_experiment(local)
    table = found.table()
    if table.empty:
        raise DataError(f"{args.experiment}: no trials yet")
    sort = args.sort or ranked_column(table)
    if sort not in table.columns:
        raise DataError(f"--sort: no column {sort!r}; columns: {', '.join(table.columns)}")
    table = sort_best_first(table, sort)
    if args.top is not None:
        table = table.head(max(args.top, 0))
    if args.csv:
        write_text_atomic(args.csv, table.to_csv(index=False))
    shown = table.drop(columns=["checkpoint"])
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise DataError(f"--columns: no column {missing[0]!r}; columns: {', '.join(table.columns)}")
        shown = table[wanted]
    baselines = read_baselines(local)
    shown = with_baselines(shown, baselines, sort)
    print(format_table(shown, with_checkpoint=True))
    if baselines:
        print("\n" + format_baselines(baselines))
    if (local / REPEATS_CSV).is_file():
        print("\nThe top configurations trained again with other seeds (mean +- sd over the seeds):")
        print(format_repeats(read_repeats_csv(local / REPEATS_CSV, found.metric), found.metric))
    if args.markdown:
        write_text_atomic(args.markdown, markdown_table(shown))
    return 0


def console() -> int:
    """The `raydream-results` command: the same as `python -m raydream.results`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
