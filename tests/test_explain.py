"""`raydream.explain` on small networks trained here on planted motifs (no Ray): the
mutagenesis and the attributions find the planted site, motif discovery names the planted
motifs, a shuffled-label control finds none of it, the forward-strand-only motif shows as
strand asymmetry, and variant effects are `predict` differences."""

import numpy as np
import pytest
import torch

pytest.importorskip("tangermeme")
pytest.importorskip("captum")
pytest.importorskip("modiscolite")

from raydream.core.errors import run_cli  # noqa: E402
from raydream.models import create_model  # noqa: E402
from raydream.results.explain import attributions, main, motifs, mutagenesis, per_position, variant_effects  # noqa: E402
from raydream.results.inference import load_model  # noqa: E402
from raydream.train.checkpoint import save_checkpoint  # noqa: E402
from raydream.train.config import TrainConfig, build_model_config  # noqa: E402
from raydream.train.optim import make_recipe  # noqa: E402
from raydream.train.steps import train_epoch  # noqa: E402

from conftest import random_promoters, write_dream  # noqa: E402

# A TATA box of the yeast consensus TATAWAWR, which raises expression on the forward strand
# only (its reverse complement TATTTATA was given no effect), and a Rap1 site (its consensus, which
# JASPAR's RAP1 motif matches); each is planted in half the sequences at a random position
# of the random region.
TATA, RAP1 = "TATAAATA", "ACACCCATACAT"
SITE = 40  # where the tests below plant the TATA box in their own sequences
MODEL = {"channels": 16, "num_blocks": 2, "initial_prediction": 7.0}


def _with_motif(seqs, motif=TATA, at=SITE):
    return [s[:at] + motif + s[at + len(motif):] for s in seqs]


def _planted(seqs, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for s in seqs:
        for motif in (TATA, RAP1):
            if rng.random() < 0.5:
                s = _with_motif([s], motif, int(rng.integers(17, 97 - len(motif))))[0]
        out.append(s)
    return np.array(out, dtype=object)


def _trained(tmp_path, name: str, shuffled: bool):
    rng = np.random.default_rng(0)
    seqs = _planted(random_promoters(1200, 0), 0)
    values = (4.0 + 6.0 * np.array([s.count(TATA) for s in seqs]) + 5.0 * np.array([s.count(RAP1) for s in seqs])
              + rng.normal(0, 0.5, len(seqs)))
    if shuffled:
        values = rng.permutation(values)
    # Each strand on its own (no reverse-complement augmentation or strand averaging), so that
    # a forward-strand motif can be learned as one.
    cfg = TrainConfig(batch_size=64, lr=3e-3, rc_augment=False, rc_test_average=False)
    torch.manual_seed(0)
    model = create_model("resnet", build_model_config("resnet", MODEL, cfg))
    recipe = make_recipe(model, cfg, steps_per_epoch=len(seqs) // 64 + 1)
    for epoch in range(1, 5):
        recipe.start_epoch(epoch)
        train_epoch(model, recipe, ({"sequence": seqs[i: i + 64], "expression": values[i: i + 64]}
                                    for i in range(0, len(seqs), 64)), cfg, torch.device("cpu"))
    path = tmp_path / name
    save_checkpoint(path, model.eval(), "resnet", build_model_config("resnet", MODEL, cfg), cfg, 4, {"val_r2": 0.0})
    return load_model(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain")
    return _trained(tmp, "planted", False), _trained(tmp, "shuffled", True)


def _site_ratio(w, scores) -> float:
    """Mean |score| on the planted site over the mean elsewhere in the sequences."""
    per = np.stack([np.abs(per_position(w, scores, i)).sum(axis=0) for i in range(len(w.sequences))])
    on = per[:, SITE: SITE + len(TATA)].mean()
    off = np.delete(per, range(SITE, SITE + len(TATA)), axis=1).mean()
    return on / off


def test_mutagenesis_and_attributions_peak_on_the_planted_site_and_not_in_a_control(models):
    planted, control = models
    seqs = _with_motif(random_promoters(12, 9))
    ism_ratio = _site_ratio(*mutagenesis(planted, seqs))
    attr = attributions(planted, seqs, n_shuffles=4)
    ig_ratio = _site_ratio(attr.windows, attr.scores)
    assert ism_ratio > 10 and ig_ratio > 5, (ism_ratio, ig_ratio)
    assert attr.delta < 0.5  # completeness: the scores sum to the prediction's change from the references
    # at the base that is there, a base's hypothetical contribution is its score
    assert np.allclose((attr.hypothetical * attr.windows.x.numpy()), attr.scores)
    control_ism = _site_ratio(*mutagenesis(control, seqs))
    control_attr = attributions(control, seqs, n_shuffles=4)
    control_ig = _site_ratio(control_attr.windows, control_attr.scores)
    assert control_ism < 3 and control_ig < 3, (control_ism, control_ig)
    # substituting a base of the motif lowers the prediction: the planted effect is positive
    w, effects = mutagenesis(planted, seqs)
    assert per_position(w, effects, 0)[:, SITE: SITE + len(TATA)].sum(axis=0).mean() < -0.5


def _named(table, known: str, planted: str):
    """The motifs that the analysis names as a planted motif: raising expression, matched to
    the known motif among their 3 best matches at q <= 0.05, holding the planted bases, with
    at least 50 seqlets (the 200 sequences below hold each site about 100 times), and doing
    on their own, inserted, more than 1 and more than 4 standard deviations above their
    shuffles."""
    matched = np.any([table[f"match_{j}"].str.endswith(" " + known) & (table[f"q_{j}"] <= 0.05) for j in (1, 2, 3)],
                     axis=0)
    return table[matched & (table["sign"] == "+") & table["consensus"].str.contains(planted)
                 & (table["seqlets"] >= 50) & (table["marginal_effect"] > 1) & (table["effect_z"] > 4)]


def test_motif_discovery_names_the_planted_motifs_and_not_in_a_control(models, tmp_path):
    from raydream.results.explain import plot_motif

    planted, control = models
    seqs = _planted(random_promoters(200, 13), 1)
    seqlets, table, found = motifs(attributions(planted, seqs, n_shuffles=4), planted)
    assert plot_motif(found[0], tmp_path / "motif.png").stat().st_size > 0
    # Rap1's site, named first; the TATA box, turned to the strand the model reads it on, has
    # TBP (SPT15 in yeast) among its closest known motifs (the AT-rich MADS-box sites of SMP1
    # and RLM1 match it as well), and does nothing on the other strand
    rap1, tata = _named(table, "RAP1", RAP1), _named(table, "SPT15", TATA)
    assert len(rap1) == 1 and rap1["match_1"].iloc[0].endswith(" RAP1") and len(tata) == 1, table.to_string()
    assert abs(tata["reverse_effect"].iloc[0]) < tata["marginal_effect"].iloc[0] / 4, table.to_string()
    # the RAP1 motif's seqlets lie on the planted sites (the rest on near-sites of the random
    # bases, such as ACACCCAGACTA), and find most of them
    found = seqlets[seqlets["motif"] == rap1["motif"].iloc[0]]
    starts = np.array([seqs[i].find(RAP1) for i in found["sequence"]])
    on_site = (starts >= 0) & (found["start"].to_numpy() < starts + len(RAP1)) & (found["end"].to_numpy() > starts)
    assert on_site.mean() >= 0.8 and on_site.sum() >= 0.6 * sum(RAP1 in s for s in seqs), found[~on_site]
    # The control, on the same sequences, names neither. It memorised its shuffled labels and
    # has motifs of its own; where one resembles a planted motif (half the sequences hold the
    # Rap1 site), it is a weak one.
    _, control_table, _ = motifs(attributions(control, seqs, n_shuffles=4), control)
    assert _named(control_table, "RAP1", RAP1).empty and _named(control_table, "SPT15", TATA).empty
    for known, planted_row in (("RAP1", rap1), ("SPT15", tata)):
        like = np.any([control_table[f"match_{j}"].str.endswith(" " + known) & (control_table[f"q_{j}"] <= 0.05)
                       for j in (1, 2, 3)], axis=0)
        for _, row in control_table[like].iterrows():
            assert row["seqlets"] < planted_row["seqlets"].iloc[0] / 3, control_table.to_string()
            assert row["mean_contribution"] < planted_row["mean_contribution"].iloc[0] / 5, control_table.to_string()


def test_the_forward_only_motif_shows_as_strand_asymmetry_and_variant_effects_are_predict_differences(models):
    planted, _ = models
    refs = random_promoters(20, 11)
    forward = variant_effects(planted, refs, _with_motif(refs))
    reverse = variant_effects(planted, refs, _with_motif(refs, "TATTTATA"))
    assert forward.mean() > 3 and abs(reverse.mean()) < forward.mean() / 3, (forward.mean(), reverse.mean())
    assert np.array_equal(forward, planted.predict(_with_motif(refs)) - planted.predict(refs))


def test_the_command_writes_its_tables_and_plots_and_refuses_bad_input(models, tmp_path, capsys):
    planted, _ = models
    seqs = _with_motif(random_promoters(6, 3))
    dream = write_dream(tmp_path / "in.txt", seqs, np.arange(6.0))
    variants = tmp_path / "variants.tsv"
    variants.write_text("".join(f"{r}\t{a}\t{i}\n" for i, (r, a) in enumerate(zip(random_promoters(4, 5),
                                                                                     _with_motif(random_promoters(4, 5))))))
    subsets = tmp_path / "subsets.tsv"  # raydream.evaluate's table: single subsets, and pairs (alt, ref)
    subsets.write_text("subset\tindex\tref_index\nhigh\t0\t\nhigh\t1\t\nhigh\t2\t\nlow\t3\t\nlow\t4\t\n"
                       "low\t5\t\nSNVs\t1\t0\nSNVs\t4\t2\nSNVs\t5\t0\n")
    out = tmp_path / "out"
    assert main(["--checkpoint", str(planted.checkpoint), "--input", str(dream), "--variants", str(variants),
                 "--subsets", str(subsets), "--out", str(out), "--plots", "1", "--shuffles", "2"]) == 0
    printed = capsys.readouterr().out
    assert "variant effects of 4 pair(s): Pearson r^2" in printed and "calibration on all 6 rows" in printed
    assert max(len(line) for line in printed.splitlines()) <= 120, printed
    assert {p.name for p in out.iterdir()} == {
        "mutagenesis.tsv", "attributions.tsv", "seqlets.tsv", "motifs.tsv", "mutagenesis_0.png", "attributions_0.png",
        "variant_effects.tsv",
        "calibration_density.png", "calibration_residuals.png", "predictions.tsv", "subsets.tsv",
        "calibration_subsets.png"}
    import pandas as pd

    from raydream.results.evaluate import correlations

    pairs = pd.read_csv(out / "variant_effects.tsv", sep="\t")
    r2, rho = correlations(pairs["predicted_effect"].to_numpy(), pairs["measured_effect"].to_numpy())
    import re

    shown = re.search(r"Pearson r\^2 ([0-9.]+), Spearman (-?[0-9.]+)", printed)  # the DREAM pair score
    assert shown and [float(v) for v in shown.groups()] == pytest.approx([r2, rho], abs=2e-4)
    # per subset, as raydream.evaluate scores the same predictions
    from raydream.results.evaluate import dream_scores, read_subsets

    predicted = pd.read_csv(out / "predictions.tsv", sep="\t")["predicted"].to_numpy()
    official = dream_scores(predicted, np.arange(6.0), read_subsets(subsets, 6))
    by_subset = pd.read_csv(out / "subsets.tsv", sep="\t").set_index("subset")
    for name in ("all", "high", "low", "SNVs"):
        assert by_subset.loc[name, "pearson_r2"] == pytest.approx(official[f"pearson_r2_{name}"], abs=1e-3), name
    assert by_subset.loc["SNVs", "rows_or_pairs"] == 3
    ism = pd.read_csv(out / "mutagenesis.tsv", sep="\t")
    assert len(ism) == 6 * 110 * 3 and set(ism["alt"]) == set("ACGT")
    # bad input: one error line, exit 2, nothing written
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{seqs[0]}\tACGTX\n")
    again = tmp_path / "again"
    assert run_cli(main, ["--checkpoint", str(planted.checkpoint), "--input", str(dream), "--variants", str(bad),
                          "--out", str(again)]) == 2
    assert f"{bad}, line 1: ALT sequence has characters other than A/C/G/T/N" in capsys.readouterr().err
    assert run_cli(main, ["--checkpoint", str(planted.checkpoint), "--input", str(dream), "--out", str(out)]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert run_cli(main, ["--checkpoint", str(planted.checkpoint), "--input", str(dream), "--out", str(dream)]) == 2
    assert not again.exists() and not list(tmp_path.glob(".again*")) and dream.read_text().count("\n") == 6


def test_an_experiment_split_is_explained_with_random_snvs_of_it(experiment, tmp_path, capsys):
    import json

    import pandas as pd

    from raydream.prepare import main as prepare_main
    from raydream.results.record import SEARCH_FILE

    source = write_dream(tmp_path / "all.txt", random_promoters(200, 4), np.linspace(0, 17, 200))
    assert run_cli(prepare_main, [str(source), "--out", str(tmp_path / "data")]) == 0
    record = json.loads((experiment / SEARCH_FILE).read_text())
    (experiment / SEARCH_FILE).write_text(json.dumps({**record, "data": str(tmp_path / "data")}))
    test_rows = json.loads((tmp_path / "data" / "manifest.json").read_text())["rows"]["test"]
    capsys.readouterr()
    out = tmp_path / "explained"
    assert run_cli(main, ["--experiment", str(experiment), "--split", "test", "--random-snvs", "7", "--out",
                          str(out), "--max-sequences", "3", "--plots", "0", "--shuffles", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"calibration on all {test_rows} rows" in printed and "variant effects of 7 pair(s)" in printed
    pairs = pd.read_csv(out / "variant_effects.tsv", sep="\t")
    test_split = set(pd.read_csv(out / "predictions.tsv", sep="\t")["sequence"])
    assert len(pairs) == 7 and set(pairs["ref"]) <= test_split
    for ref, alt in zip(pairs["ref"], pairs["alt"]):
        changed = [i for i, (a, b) in enumerate(zip(ref, alt)) if a != b]
        assert len(ref) == len(alt) and len(changed) == 1 and 17 <= changed[0] < 97
    assert run_cli(main, ["--checkpoint", str(experiment / "trial_1" / "checkpoint_000000"), "--split", "test",
                          "--out", str(tmp_path / "again")]) == 2
    assert "--split explains a split of an experiment's dataset: give --experiment" in capsys.readouterr().err


def test_a_motif_is_inserted_into_sequences_with_n_and_of_other_lengths_and_turned_to_its_strand(models):
    from raydream.results.explain import Motif, _function, marginal_effects, windows

    planted, _ = models
    seqs = random_promoters(10, 5)
    seqs[0] = seqs[0][:30] + "N" + seqs[0][31:]
    seqs[1] = seqs[1][:104]  # a shorter sequence sits elsewhere in its window
    w = windows(seqs, _function(planted).config)
    reverse = np.array([[float(b == c) for c in "TATTTATA"] for b in "ACGT"])  # the TATA box's other strand
    motif = Motif("pos_0", "+", 10, reverse.copy(), reverse.copy(), [])
    assert marginal_effects(planted, w, [motif]) == [motif]
    assert motif.consensus == TATA and motif.effect > 1 and abs(motif.reverse_effect) < motif.effect / 4, motif
    assert motif.effect_z > 3, motif


def test_a_tree_model_gets_mutagenesis_by_prediction_which_for_a_network_is_tangermemes(models, tmp_path, capsys):
    from raydream.data.features import sequence_features
    from raydream.models import model_config
    from raydream.models.trees import TreeModel, grow_forest, new_forest
    from raydream.results.explain import substitution_effects
    from raydream.train.checkpoint import save_tree_checkpoint

    planted, _ = models
    seqs = _with_motif(random_promoters(4, 21))
    w, effects = mutagenesis(planted, seqs)
    by_prediction = substitution_effects(planted, seqs)
    assert all(np.allclose(by_prediction[i], per_position(w, effects, i), atol=1e-4) for i in range(len(seqs)))
    # a random forest on k-mer counts: mutagenesis only, by its predictions
    train = _planted(random_promoters(300, 2), 2)
    cfg = model_config("random_forest", {"k": 3, "n_estimators": 5, "max_depth": 6})
    forest = TreeModel(cfg, grow_forest(new_forest(cfg, 0, n_jobs=1), 5, sequence_features(train, cfg),
                                        np.array([s.count(TATA) for s in train], dtype=float)))
    save_tree_checkpoint(tmp_path / "forest", forest, "random_forest", TrainConfig(), epoch=1, metrics={"val_r2": 0.0})
    dream = write_dream(tmp_path / "in.txt", seqs, np.arange(4.0))
    out = tmp_path / "out"
    assert run_cli(main, ["--checkpoint", str(tmp_path / "forest"), "--input", str(dream), "--out", str(out),
                          "--plots", "1"]) == 0
    assert "a random_forest tree model has no gradients" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"mutagenesis.tsv", "mutagenesis_0.png", "predictions.tsv",
                                               "calibration_density.png", "calibration_residuals.png"}
    assert run_cli(main, ["--checkpoint", str(tmp_path / "forest"), "--input", str(dream), "--out",
                          str(tmp_path / "map"), "--embedding", "4"]) == 2
    assert "a random_forest tree model has none" in capsys.readouterr().err
