"""DREAM-style scoring (`python -m raydream.evaluate`), no Ray."""

import json
import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from raydream.core.errors import DataError, run_cli
from raydream.results.evaluate import SUBSET_WEIGHTS, dream_scores, main, read_subsets

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
    # always over 4.65, as the challenge's scorer: the absent subsets add nothing, and are named
    assert scores["score_pearson"] == pytest.approx((r2_all + 0.3 * r2_high + 1.25 * r2_snv) / 4.65)
    rho_all, rho_high = spearmanr(pred, truth)[0], spearmanr(pred[:20], truth[:20])[0]
    rho_snv = spearmanr(pred[20:40] - pred[40:60], truth[20:40] - truth[40:60])[0]
    assert scores["score_spearman"] == pytest.approx((rho_all + 0.3 * rho_high + 1.25 * rho_snv) / 4.65)
    assert "pearson_r2_low" not in scores
    assert scores["missing_subsets"] == ["low", "yeast", "random", "challenging", "motif_perturbation",
                                         "motif_tiling"]


def test_a_perfect_prediction_scores_one_and_a_constant_one_is_not_scored():
    truth = np.arange(10.0)
    every = {name: np.arange(5) for name in SUBSET_WEIGHTS if name != "all"}
    every.update({name: np.array([[i, 9 - i] for i in range(5)]) for name in ("SNVs", "motif_perturbation",
                                                                               "motif_tiling")})
    perfect = dream_scores(truth, truth, every)
    assert perfect["score_pearson"] == pytest.approx(1.0) and perfect["missing_subsets"] == []
    constant = dream_scores(np.ones(10), truth, {})
    assert constant["score_pearson"] == 0.0 and constant["missing_subsets"][0] == "all"


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


def _challenge_dirs(tmp_path):
    """The challenge's test_subset_ids and public_leaderboard_ids directories, in its formats,
    for a 30-row truth file: high rows 0-9 (row 3 listed twice), SNV pairs (10+i, 20+i); the
    public leaderboard scored rows 0 and 1 of high and the SNV pair (10, 20). No low file."""
    subsets, public = tmp_path / "test_subset_ids", tmp_path / "public_leaderboard_ids"
    subsets.mkdir()
    public.mkdir()
    (subsets / "high_exp_seqs.csv").write_text("pos\n" + "".join(f"{i}\n" for i in [*range(10), 3]))
    (subsets / "all_SNVs_seqs.csv").write_text("alt_pos,ref_pos\n" + "".join(f"{10 + i},{20 + i}\n" for i in range(10)))
    (public / "high_exp_indices.json").write_text(json.dumps({"0": 1.0, "1": 2.0}))
    (public / "SNVs_exp_indices.json").write_text(json.dumps({"10,20": 0.5}))
    return subsets, public


def test_the_challenges_own_files_score_each_row_once_over_4_65_and_without_r2_on_another_scale(tmp_path, capsys):
    from raydream.results.evaluate import exclude_public, read_challenge_subsets, read_public_ids

    truth_path, _, values = _truth(tmp_path)
    subsets_dir, public_dir = _challenge_dirs(tmp_path)
    subsets, absent = read_challenge_subsets(subsets_dir, 30)
    assert subsets["high"].tolist() == list(range(10)) and subsets["SNVs"].shape == (10, 2)
    assert "low" in absent and "high" not in absent
    kept, all_rows = exclude_public(subsets, read_public_ids(public_dir, 30), 30)
    assert kept["high"].tolist() == list(range(2, 10)) and kept["SNVs"][:, 0].tolist() == list(range(11, 20))
    assert 0 not in all_rows and 10 not in all_rows and 20 not in all_rows and len(all_rows) == 26

    pred = values + np.random.default_rng(3).normal(0, 1, len(values))
    (tmp_path / "pred.json").write_text(json.dumps({str(i): float(v) for i, v in enumerate(pred)}))
    out = tmp_path / "scores.json"
    assert main(["--pred", str(tmp_path / "pred.json"), "--truth", str(truth_path), "--challenge-subsets",
                 str(subsets_dir), "--exclude-public", str(public_dir), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "\nr2\t" not in "\n" + printed and "\nmse\t" not in "\n" + printed  # MAUDE-scale labels
    scores = json.loads(out.read_text())
    r2_high = pearsonr(pred[2:10], values[2:10])[0] ** 2
    assert scores["pearson_r2_high"] == pytest.approx(r2_high)
    r2_all = pearsonr(pred[all_rows], values[all_rows])[0] ** 2
    r2_snv = pearsonr(pred[11:20] - pred[21:30], values[11:20] - values[21:30])[0] ** 2
    assert scores["score_pearson"] == pytest.approx((r2_all + 0.3 * r2_high + 1.25 * r2_snv) / 4.65)
    assert "low" in scores["subset_files_missing"] and "low" in scores["missing_subsets"]
    assert "missing_subsets\tlow, yeast, random, challenging, motif_perturbation, motif_tiling" in printed


def test_challenge_file_errors_name_the_file(tmp_path, capsys):
    truth_path, _, values = _truth(tmp_path)
    subsets_dir, public_dir = _challenge_dirs(tmp_path)
    (tmp_path / "pred.json").write_text(json.dumps({str(i): float(v) for i, v in enumerate(values)}))
    args = ["--pred", str(tmp_path / "pred.json"), "--truth", str(truth_path)]
    assert run_cli(main, [*args, "--exclude-public", str(public_dir)]) == 2
    assert "give --challenge-subsets too" in capsys.readouterr().err
    (subsets_dir / "yeast_seqs.csv").write_text("position\n1\n")
    assert run_cli(main, [*args, "--challenge-subsets", str(subsets_dir)]) == 2
    assert "yeast_seqs.csv: line 1: no column 'pos'" in capsys.readouterr().err
    (subsets_dir / "yeast_seqs.csv").write_text("pos\n99\n")
    assert run_cli(main, [*args, "--challenge-subsets", str(subsets_dir)]) == 2
    assert "yeast_seqs.csv: line 2: index '99' is not a row of the truth file (0..29)" in capsys.readouterr().err
