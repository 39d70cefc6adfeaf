"""DREAM-style scoring (`python -m raydream.evaluate`), no Ray."""

import json
import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from raydream.errors import DataError, run_cli
from raydream.evaluate import SUBSET_WEIGHTS, dream_scores, main, read_subsets

from conftest import random_promoters, write_dream


def test_subset_weights_add_up_to_the_challenge_denominator():
    assert sum(SUBSET_WEIGHTS.values()) == pytest.approx(4.65)


def test_weighted_scores_follow_the_challenge_formula():
    rng = np.random.default_rng(0)
    truth = rng.normal(8, 2, 60)
    pred = truth + rng.normal(0, 1, 60)
    subsets = {"high": np.arange(0, 20), "SNVs": np.array([[20 + i, 40 + i] for i in range(20)])}
    scores = dream_scores(pred, truth, subsets)
    r2_all = pearsonr(pred, truth)[0] ** 2
    r2_high = pearsonr(pred[:20], truth[:20])[0] ** 2
    r2_snv = pearsonr(pred[20:40] - pred[40:60], truth[20:40] - truth[40:60])[0] ** 2  # alt - ref
    assert scores["pearson_r2_SNVs"] == pytest.approx(r2_snv)
    assert scores["score_pearson"] == pytest.approx((r2_all + 0.3 * r2_high + 1.25 * r2_snv) / (1 + 0.3 + 1.25))
    rho_all, rho_high = spearmanr(pred, truth)[0], spearmanr(pred[:20], truth[:20])[0]
    rho_snv = spearmanr(pred[20:40] - pred[40:60], truth[20:40] - truth[40:60])[0]
    assert scores["score_spearman"] == pytest.approx((rho_all + 0.3 * rho_high + 1.25 * rho_snv) / 2.55)
    assert "pearson_r2_low" not in scores  # subsets not in the table are left out


def test_a_perfect_prediction_scores_one_and_a_constant_one_is_not_scored():
    truth = np.arange(10.0)
    assert dream_scores(truth, truth, {"low": np.arange(5)})["score_pearson"] == pytest.approx(1.0)
    assert math.isnan(dream_scores(np.ones(10), truth, {})["score_pearson"])


def _truth(tmp_path, n=30):
    seqs = random_promoters(n, seed=4)
    values = np.round(np.random.default_rng(2).uniform(0, 17, n), 2)
    return write_dream(tmp_path / "truth.txt", seqs, values), seqs, values


def test_cli_scores_json_and_tsv_predictions_alike(tmp_path, capsys):
    truth_path, seqs, values = _truth(tmp_path)
    pred = values + np.random.default_rng(3).normal(0, 1, len(values))
    (tmp_path / "pred.json").write_text(json.dumps({str(i): float(v) for i, v in enumerate(pred)}))
    (tmp_path / "pred.tsv").write_text("sequence\tprediction\n" + "".join(f"{s}\t{v}\n" for s, v in zip(seqs, pred)))
    (tmp_path / "subsets.tsv").write_text("subset\tindex\tref_index\n" + "".join(f"high\t{i}\t\n" for i in range(10))
                                          + "".join(f"SNVs\t{i}\t{i + 10}\n" for i in range(10, 20)))
    out = tmp_path / "scores.json"
    for pred_file in ("pred.json", "pred.tsv"):
        assert main(["--pred", str(tmp_path / pred_file), "--truth", str(truth_path),
                     "--subsets", str(tmp_path / "subsets.tsv"), "--json", str(out)]) == 0
        scores = json.loads(out.read_text())
        assert scores["r2"] == pytest.approx(1 - np.mean((pred - values) ** 2) / np.var(values))
        assert {"score_pearson", "score_spearman", "pearson_r2_high", "pearson_r2_SNVs"} <= set(scores)
    assert "score_pearson\t" in capsys.readouterr().out


BAD_SUBSETS = {
    "header": ("name\tindex\tref_index\nhigh\t1\t\n", "line 1: expected the header"),
    "unknown": ("subset\tindex\tref_index\nmedium\t1\t\n", "line 2: unknown subset 'medium'"),
    "range": ("subset\tindex\tref_index\nhigh\t1\t\nhigh\t99\t\n", "line 3: index '99' is not a row"),
    "unpaired": ("subset\tindex\tref_index\nSNVs\t1\t\n", "line 2: subset SNVs needs a ref_index"),
    "paired_single": ("subset\tindex\tref_index\nlow\t1\t2\n", "line 2: subset low is not paired"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUBSETS))
def test_bad_subset_tables_name_the_file_and_line(tmp_path, case):
    path = tmp_path / "subsets.tsv"
    path.write_text(BAD_SUBSETS[case][0])
    with pytest.raises(DataError, match=BAD_SUBSETS[case][1]) as info:
        read_subsets(path, 30)
    assert str(path) in str(info.value)


def test_bad_predictions_are_one_error_line(tmp_path, capsys):
    truth_path, seqs, values = _truth(tmp_path)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"0": 1.0}))
    assert run_cli(main, ["--pred", str(short), "--truth", str(truth_path)]) == 2
    assert 'expected keys "0".."29"' in capsys.readouterr().err
    swapped = tmp_path / "swapped.tsv"
    rows = [f"{s}\t1.0\n" for s in seqs]
    rows[4], rows[5] = rows[5], rows[4]
    swapped.write_text("sequence\tprediction\n" + "".join(rows))
    assert run_cli(main, ["--pred", str(swapped), "--truth", str(truth_path)]) == 2
    assert "line 6: sequence differs from row 4" in capsys.readouterr().err
