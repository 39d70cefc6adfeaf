"""`python -m raydream.evaluate`: score predictions like the DREAM 2022 challenge (no Ray).

Without a subset table: R^2, Pearson r, Spearman rho and MSE over all rows. With one, also
each test subset's squared Pearson r and Spearman rho and the challenge's weighted scores:

    Pearson score  = sum_s w_s r^2_s / sum_s w_s
    Spearman score = sum_s w_s rho_s / sum_s w_s

with the weights in `SUBSET_WEIGHTS` (they add up to 4.65). The paired subsets (SNVs, motif
perturbation, motif tiling) are scored on differences: prediction(alt) - prediction(ref)
against measured(alt) - measured(ref).

Subset table: tab-separated, with a header line `subset<TAB>index<TAB>ref_index`. `index` is
a 0-based row of the truth file; `ref_index` is empty for single subsets and names the
reference row of a pair for paired ones. Subset names are those of `SUBSET_WEIGHTS`;
`all` is implied (every row) and need not be listed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from raydream.errors import ArgumentParser, DataError, run_cli
from raydream.data.dream import NUMBER_RE
from raydream.files import refuse_overwriting_inputs, require_regular_file, write_text_atomic
from raydream.metrics import regression_metrics

SUBSET_WEIGHTS = {
    "all": 1.0,
    "high": 0.3,
    "low": 0.3,
    "yeast": 0.3,
    "random": 0.3,
    "challenging": 0.5,
    "SNVs": 1.25,
    "motif_perturbation": 0.3,
    "motif_tiling": 0.4,
}
PAIRED = ("SNVs", "motif_perturbation", "motif_tiling")
SUBSET_COLUMNS = ("subset", "index", "ref_index")


def read_subsets(path: str | os.PathLike, n_rows: int) -> dict[str, np.ndarray]:
    """Subset name -> row indices (single subsets, shape (k,)) or (alt, ref) pairs (k, 2).

    Raises:
        DataError: naming the file and line of a bad header, unknown subset, bad or
            out-of-range index, or a pair missing from a paired subset.
    """
    path = require_regular_file(path, "subset table")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the subset table: {str(err).splitlines()[0]}") from None
    if tuple(table.columns) != SUBSET_COLUMNS:
        raise DataError(f"{path}: line 1: expected the header {'<TAB>'.join(SUBSET_COLUMNS)}, got {'<TAB>'.join(table.columns)}")
    rows: dict[str, list] = {}
    for line, (name, index, ref) in enumerate(table.itertuples(index=False), start=2):
        if name not in SUBSET_WEIGHTS or name == "all":
            allowed = ", ".join(k for k in SUBSET_WEIGHTS if k != "all")
            raise DataError(f"{path}: line {line}: unknown subset {name!r}; expected one of {allowed}")
        paired = name in PAIRED
        if paired != bool(ref):
            need = "needs a ref_index" if paired else "is not paired: leave ref_index empty"
            raise DataError(f"{path}: line {line}: subset {name} {need}")
        indices = [_row_index(path, line, value, n_rows) for value in ((index, ref) if paired else (index,))]
        rows.setdefault(name, []).append(indices if paired else indices[0])
    return {name: np.asarray(values, dtype=np.int64) for name, values in rows.items()}


def _row_index(path: Path, line: int, value: str, n_rows: int) -> int:
    if not value.isdigit() or int(value) >= n_rows:
        raise DataError(f"{path}: line {line}: index {value!r} is not a row of the truth file (0..{n_rows - 1})")
    return int(value)


def _correlations(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(Pearson r^2, Spearman rho); NaN with fewer than 2 rows or a constant side."""
    if len(pred) < 2:
        return math.nan, math.nan
    scores = regression_metrics(truth, pred)  # correlations are NaN where a side is constant
    return scores["pearson"] ** 2, scores["spearman"]


def dream_scores(pred: np.ndarray, truth: np.ndarray, subsets: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-subset `pearson_r2_<s>` and `spearman_<s>`, and the weighted `score_pearson` and
    `score_spearman` over the subsets present ("all" always; a subset absent from the
    table, or with too few rows to correlate, is left out of both sums)."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    out: dict[str, float] = {}
    num_p = num_s = den = 0.0
    for name, weight in SUBSET_WEIGHTS.items():
        if name == "all":
            p, t = pred, truth
        elif name in subsets:
            idx = subsets[name]
            if name in PAIRED:
                p, t = pred[idx[:, 0]] - pred[idx[:, 1]], truth[idx[:, 0]] - truth[idx[:, 1]]
            else:
                p, t = pred[idx], truth[idx]
        else:
            continue
        r2, rho = _correlations(p, t)
        out[f"pearson_r2_{name}"], out[f"spearman_{name}"] = r2, rho
        if not math.isnan(r2):
            num_p, num_s, den = num_p + weight * r2, num_s + weight * rho, den + weight
    out["score_pearson"] = num_p / den if den else math.nan
    out["score_spearman"] = num_s / den if den else math.nan
    return out


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """A DREAM file (SEQUENCE<TAB>EXPRESSION) as columns sequence, expression, validated."""
    from raydream.data.dream import DreamReader

    tables = list(DreamReader(path))
    frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables else pd.DataFrame()
    if len(frame) < 2:
        raise DataError(f"{path}: {len(frame)} row(s); scores need at least 2 measured values")
    return frame[["sequence", "expression"]]


def read_predictions(path: str | os.PathLike, truth: pd.DataFrame) -> np.ndarray:
    """Predictions in truth-file order, from a DREAM submission JSON ({"0": value, ...}) or a
    TSV with a header `sequence<TAB>prediction` in the truth file's order.

    Raises:
        DataError: naming the file and the row that is missing, extra, or for another sequence.
    """
    path = require_regular_file(path, "predictions file")
    n = len(truth)
    if path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not a JSON file of index -> prediction: {err}") from None
        if not isinstance(raw, dict) or sorted(raw, key=lambda k: int(k) if str(k).isdigit() else -1) != [str(i) for i in range(n)]:
            raise DataError(f"{path}: expected keys \"0\"..\"{n - 1}\", one per row of the truth file")
        for i in range(n):
            value = raw[str(i)]
            # bool is an int in Python: true would score as 1.0
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise DataError(f"{path}: key \"{i}\": prediction {json.dumps(value)} is not a finite number")
        return np.array([float(raw[str(i)]) for i in range(n)])
    try:
        table = pd.read_csv(path, sep="\t", dtype={"sequence": str, "prediction": str}, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read predictions: {str(err).splitlines()[0]}") from None
    if list(table.columns) != ["sequence", "prediction"]:
        raise DataError(f"{path}: line 1: expected the header sequence<TAB>prediction, got {'<TAB>'.join(map(str, table.columns))}")
    if len(table) != n:
        raise DataError(f"{path}: {len(table)} predictions for {n} rows of the truth file")
    differs = np.flatnonzero(table["sequence"].str.upper().to_numpy() != truth["sequence"].to_numpy())
    if len(differs):
        raise DataError(f"{path}: line {differs[0] + 2}: sequence differs from row {differs[0]} of the truth file")
    numbers = table["prediction"].str.strip()
    values = pd.to_numeric(numbers.where(numbers.str.match(NUMBER_RE), "nan"), errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{path}: line {bad + 2}: prediction {table['prediction'].iloc[bad]!r} is not a finite number")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m raydream.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--pred", required=True, help="predictions: DREAM submission JSON, or TSV sequence<TAB>prediction")
    p.add_argument("--truth", required=True, help="measured values: a DREAM file (SEQUENCE<TAB>EXPRESSION)")
    p.add_argument("--subsets", default=None, help="subset table (TSV subset, index, ref_index) for the weighted scores")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json:
        refuse_overwriting_inputs(args.json, [args.pred, args.truth, args.subsets], "--json")
    truth = read_truth(args.truth)
    pred = read_predictions(args.pred, truth)
    y = truth["expression"].to_numpy(dtype=np.float64)
    scores = regression_metrics(y, pred)
    if args.subsets:
        scores.update(dream_scores(pred, y, read_subsets(args.subsets, len(truth))))
    for key, value in scores.items():
        print(f"{key}\t{value:.4f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
