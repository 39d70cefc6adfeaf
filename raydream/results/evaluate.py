"""`python -m raydream.evaluate`: score predictions like the DREAM 2022 challenge (no Ray).

Without subsets: R^2, Pearson r, Spearman rho and MSE over all rows. With them, also each
test subset's squared Pearson r and Spearman rho and the challenge's weighted scores:

    Pearson score  = sum_s w_s r^2_s / 4.65
    Spearman score = sum_s w_s rho_s / 4.65

with the weights in `SUBSET_WEIGHTS` (they add up to 4.65). The denominator is always 4.65,
as the challenge's scorer has it: a subset that is missing (or cannot be correlated) adds
nothing and is named in `missing_subsets`. The paired subsets (SNVs, motif perturbation,
motif tiling) are scored on differences: prediction(alt) - prediction(ref) against
measured(alt) - measured(ref). A row listed twice in a subset counts once.

Subsets come from either:

* `--challenge-subsets DIR`: the challenge's own `test_subset_ids` directory (CSV files
  with a `pos` column, or `alt_pos` and `ref_pos` for pairs; `CHALLENGE_FILES`), for the
  challenge's test file (`filtered_test_data_with_MAUDE_expression.txt`). With
  `--exclude-public DIR` (its `public_leaderboard_ids` directory of JSON files) the rows
  scored on the public leaderboard are left out of every subset and of `all`, as the final
  (private) evaluation does. Those test labels are on MAUDE's scale, not the bins a model
  trained on DREAM data predicts, so R^2 and MSE are not reported; correlations are.
* `--subsets TABLE`: a table of your own, tab-separated, with a header line
  `subset<TAB>index<TAB>ref_index`. `index` is a 0-based row of the truth file; `ref_index`
  is empty for single subsets and names the reference row of a pair for paired ones.
  Subset names are those of `SUBSET_WEIGHTS`; `all` is implied (every row).
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

from raydream.core.errors import ArgumentParser, DataError, run_cli
from raydream.data.dream import NUMBER_RE
from raydream.core.files import refuse_overwriting_inputs, require_regular_file, write_text_atomic
from raydream.core.metrics import regression_metrics

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
TOTAL_WEIGHT = 4.65  # the challenge's denominator: the sum of SUBSET_WEIGHTS
PAIRED = ("SNVs", "motif_perturbation", "motif_tiling")
SUBSET_COLUMNS = ("subset", "index", "ref_index")
# The challenge's files: each subset's CSV in test_subset_ids/, and the JSON of the rows the
# public leaderboard scored in public_leaderboard_ids/ (keys "i", or "alt,ref" for pairs).
CHALLENGE_FILES = {
    "high": "high_exp_seqs.csv",
    "low": "low_exp_seqs.csv",
    "yeast": "yeast_seqs.csv",
    "random": "all_random_seqs.csv",
    "challenging": "challenging_seqs.csv",
    "SNVs": "all_SNVs_seqs.csv",
    "motif_perturbation": "motif_perturbation.csv",
    "motif_tiling": "motif_tiling_seqs.csv",
}
PUBLIC_FILES = {name: f"{name}_exp_indices.json" for name in CHALLENGE_FILES}


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
    return {name: _unique(np.asarray(values, dtype=np.int64)) for name, values in rows.items()}


def _unique(indices: np.ndarray) -> np.ndarray:
    """Rows (or (alt, ref) pairs) listed more than once, once, in their first order."""
    _, first = np.unique(indices, axis=0, return_index=True)
    return indices[np.sort(first)]


def read_challenge_subsets(directory: str | os.PathLike, n_rows: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """The challenge's test subsets from its `test_subset_ids` directory (`CHALLENGE_FILES`):
    (subset -> rows, or (alt, ref) pairs, each once; the subsets whose file is not there).

    Raises:
        DataError: naming the file and line of a bad header or an index that is not a row of
            the truth file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"--challenge-subsets {directory}: not a directory; give the challenge's test_subset_ids "
                        f"directory ({', '.join(CHALLENGE_FILES.values())})")
    subsets, missing = {}, []
    for name, filename in CHALLENGE_FILES.items():
        path = directory / filename
        if not path.is_file():
            missing.append(name)
            continue
        columns = ("alt_pos", "ref_pos") if name in PAIRED else ("pos",)
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(f"{path}: cannot read the subset file: {str(err).splitlines()[0]}") from None
        absent = [c for c in columns if c not in table.columns]
        if absent:
            raise DataError(f"{path}: line 1: no column {absent[0]!r}; the challenge's {filename} has "
                            f"{' and '.join(columns)}")
        rows = [[_row_index(path, line, str(value).strip(), n_rows) for value in values]
                for line, values in enumerate(table[list(columns)].itertuples(index=False), start=2)]
        array = np.asarray(rows, dtype=np.int64).reshape(-1, len(columns))
        subsets[name] = _unique(array if name in PAIRED else array[:, 0])
    return subsets, missing


def read_public_ids(directory: str | os.PathLike, n_rows: int) -> dict[str, np.ndarray]:
    """The rows the public leaderboard scored, per subset, from the challenge's
    `public_leaderboard_ids` directory (`PUBLIC_FILES`; a missing file: none of that subset).

    Raises:
        DataError: a file that is not a JSON object of row keys ("i", or "alt,ref").
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"--exclude-public {directory}: not a directory; give the challenge's "
                        f"public_leaderboard_ids directory ({', '.join(PUBLIC_FILES.values())})")
    public = {}
    for name, filename in PUBLIC_FILES.items():
        path = directory / filename
        if not path.is_file():
            continue
        try:
            keys = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not JSON ({err})") from None
        if not isinstance(keys, dict):
            raise DataError(f"{path}: expected a JSON object whose keys are the rows scored on the public leaderboard")
        width = 2 if name in PAIRED else 1
        rows = []
        for key in keys:
            parts = str(key).split(",")
            if len(parts) != width:
                raise DataError(f"{path}: key {key!r}: expected {'alt,ref' if width == 2 else 'a row index'}")
            rows.append([_row_index(path, 1, part.strip(), n_rows) for part in parts])
        public[name] = np.asarray(rows, dtype=np.int64).reshape(-1, width)
    return public


def exclude_public(subsets: dict[str, np.ndarray], public: dict[str, np.ndarray],
                   n_rows: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The subsets without what the public leaderboard scored, as the challenge's final
    evaluation has them: a single subset loses every row the public leaderboard used
    (in any subset, either side of a pair), a paired subset the public pairs; and the rows
    of `all` that are left."""
    used = np.unique(np.concatenate([ids.ravel() for ids in public.values()] or [np.zeros(0, np.int64)]))
    public_pairs = {tuple(pair) for name in PAIRED for pair in public.get(name, np.zeros((0, 2), np.int64))}
    kept = {}
    for name, ids in subsets.items():
        if name in PAIRED:
            kept[name] = ids[[tuple(pair) not in public_pairs for pair in ids]].reshape(-1, 2)
        else:
            kept[name] = ids[~np.isin(ids, used)]
    return kept, np.setdiff1d(np.arange(n_rows), used)


def _row_index(path: Path, line: int, value: str, n_rows: int) -> int:
    if not value.isdigit() or int(value) >= n_rows:
        raise DataError(f"{path}: line {line}: index {value!r} is not a row of the truth file (0..{n_rows - 1})")
    return int(value)


def correlations(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(Pearson r^2, Spearman rho); NaN with fewer than 2 rows or a constant side."""
    if len(pred) < 2:
        return math.nan, math.nan
    scores = regression_metrics(truth, pred)  # correlations are NaN where a side is constant
    return scores["pearson"] ** 2, scores["spearman"]


def dream_scores(pred: np.ndarray, truth: np.ndarray, subsets: dict[str, np.ndarray],
                 all_rows: np.ndarray | None = None) -> dict:
    """Per-subset `pearson_r2_<s>` and `spearman_<s>`, the weighted `score_pearson` and
    `score_spearman` (divided by TOTAL_WEIGHT whatever is present), and `missing_subsets`:
    those absent from `subsets`, or with too few rows (or a constant side) to correlate,
    which add nothing to the scores. all_rows: the rows of "all" (default every row)."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    out: dict = {}
    num_p = num_s = 0.0
    missing = []
    for name, weight in SUBSET_WEIGHTS.items():
        if name == "all":
            rows = np.arange(len(pred)) if all_rows is None else all_rows
            p, t = pred[rows], truth[rows]
        elif name in subsets:
            idx = subsets[name]
            if name in PAIRED:
                p, t = pred[idx[:, 0]] - pred[idx[:, 1]], truth[idx[:, 0]] - truth[idx[:, 1]]
            else:
                p, t = pred[idx], truth[idx]
        else:
            missing.append(name)
            continue
        r2, rho = correlations(p, t)
        out[f"pearson_r2_{name}"], out[f"spearman_{name}"] = r2, rho
        if math.isnan(r2) or math.isnan(rho):
            missing.append(name)
        else:
            num_p, num_s = num_p + weight * r2, num_s + weight * rho
    out["score_pearson"] = num_p / TOTAL_WEIGHT
    out["score_spearman"] = num_s / TOTAL_WEIGHT
    out["missing_subsets"] = missing
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
    subsets = p.add_mutually_exclusive_group()
    subsets.add_argument("--subsets", default=None,
                         help="subset table of your own (TSV subset, index, ref_index) for the weighted scores")
    subsets.add_argument("--challenge-subsets", default=None, metavar="DIR",
                         help="the challenge's test_subset_ids directory, for its test file; correlations only (its "
                              "labels are on MAUDE's scale)")
    p.add_argument("--exclude-public", default=None, metavar="DIR",
                   help="with --challenge-subsets: the challenge's public_leaderboard_ids directory; leaves out the rows "
                        "the public leaderboard scored, as the final evaluation does")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json:
        refuse_overwriting_inputs(args.json, [args.pred, args.truth, args.subsets], "--json")
    if args.exclude_public and not args.challenge_subsets:
        raise DataError("--exclude-public leaves the public leaderboard's rows out of the challenge's subsets; give "
                        "--challenge-subsets too")
    truth = read_truth(args.truth)
    pred = read_predictions(args.pred, truth)
    y = truth["expression"].to_numpy(dtype=np.float64)
    if args.challenge_subsets:
        subsets, absent = read_challenge_subsets(args.challenge_subsets, len(truth))
        all_rows = None
        if args.exclude_public:
            subsets, all_rows = exclude_public(subsets, read_public_ids(args.exclude_public, len(truth)), len(truth))
        scores = dream_scores(pred, y, subsets, all_rows)
        scores["subset_files_missing"] = absent
    else:
        scores = regression_metrics(y, pred)
        if args.subsets:
            scores.update(dream_scores(pred, y, read_subsets(args.subsets, len(truth))))
    for key, value in scores.items():
        print(f"{key}\t" + (", ".join(value) or "none" if isinstance(value, list) else f"{value:.4f}"))
    if args.json:
        write_text_atomic(args.json, json.dumps(scores, indent=2))
    return 0


def console() -> int:
    """The `raydream-evaluate` command: the same as `python -m raydream.evaluate`."""
    return run_cli(main)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
