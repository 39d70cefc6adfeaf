"""`raydream.explain` on small networks trained here on a planted motif (no Ray): the
mutagenesis and the attributions find the planted site, a shuffled-label control finds
nothing, the forward-strand-only motif shows as strand asymmetry, and variant effects are
`predict` differences."""

import numpy as np
import pytest
import torch

pytest.importorskip("tangermeme")
pytest.importorskip("captum")

from raydream.core.errors import run_cli  # noqa: E402
from raydream.models import create_model  # noqa: E402
from raydream.results.explain import attributions, main, mutagenesis, per_position, variant_effects  # noqa: E402
from raydream.results.inference import load_model  # noqa: E402
from raydream.train.checkpoint import save_checkpoint  # noqa: E402
from raydream.train.config import TrainConfig, build_model_config  # noqa: E402
from raydream.train.optim import make_recipe  # noqa: E402
from raydream.train.steps import train_epoch  # noqa: E402

from conftest import random_promoters, write_dream  # noqa: E402

MOTIF, SITE = "TATAAAAG", 40  # forward strand only: its reverse complement CTTTTATA does nothing
RAP1, RAP1_SITE = "ACACCCATACAT", 70  # Rap1's consensus, which JASPAR's RAP1 motif matches
MODEL = {"channels": 16, "num_blocks": 2, "initial_prediction": 7.0}


def _with_motif(seqs, motif=MOTIF, at=SITE):
    return [s[:at] + motif + s[at + len(motif):] for s in seqs]


def _trained(tmp_path, name: str, shuffled: bool):
    rng = np.random.default_rng(0)
    seqs = random_promoters(1200, 0)
    seqs = [_with_motif([s])[0] if rng.random() < 0.5 else s for s in seqs]
    seqs = np.array([_with_motif([s], RAP1, RAP1_SITE)[0] if rng.random() < 0.5 else s for s in seqs], dtype=object)
    values = (4.0 + 6.0 * np.array([s.count(MOTIF) for s in seqs]) + 5.0 * np.array([s.count(RAP1) for s in seqs])
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
    on = per[:, SITE: SITE + len(MOTIF)].mean()
    off = np.delete(per, range(SITE, SITE + len(MOTIF)), axis=1).mean()
    return on / off


def test_mutagenesis_and_attributions_peak_on_the_planted_site_and_not_in_a_control(models):
    planted, control = models
    seqs = _with_motif(random_promoters(12, 9))
    ism_ratio = _site_ratio(*mutagenesis(planted, seqs))
    w, scores, delta = attributions(planted, seqs, n_shuffles=4)
    ig_ratio = _site_ratio(w, scores)
    assert ism_ratio > 10 and ig_ratio > 5, (ism_ratio, ig_ratio)
    assert delta < 0.5  # completeness: the scores sum to the prediction's change from the references
    control_ism = _site_ratio(*mutagenesis(control, seqs))
    control_ig = _site_ratio(*attributions(control, seqs, n_shuffles=4)[:2])
    assert control_ism < 3 and control_ig < 3, (control_ism, control_ig)
    # substituting a base of the motif lowers the prediction: the planted effect is positive
    w, effects = mutagenesis(planted, seqs)
    assert per_position(w, effects, 0)[:, SITE: SITE + len(MOTIF)].sum(axis=0).mean() < -0.5


def test_seqlets_of_the_attributions_are_named_as_the_planted_motif_and_not_in_a_control(models):
    from raydream.results.explain import attributions, motifs

    planted, control = models
    seqs = _with_motif(random_promoters(30, 13), RAP1, RAP1_SITE)
    seqlets, table = motifs(*attributions(planted, seqs, n_shuffles=4)[:2])
    top = table[(table["match"] != "no known motif") & (table["sign"] == "+")].iloc[0]
    assert top["match"].endswith(" RAP1") and top["seqlets"] >= 10 and top["median_q"] <= 0.05, table
    on_site = seqlets[seqlets["match"].str.endswith(" RAP1") & (seqlets["q_value"] <= 0.05)]
    assert ((on_site["start"] < RAP1_SITE + len(RAP1)) & (on_site["end"] > RAP1_SITE)).all(), on_site
    _, control_table = motifs(*attributions(control, seqs, n_shuffles=4)[:2])
    named = control_table[control_table["match"].str.endswith(" RAP1")]
    assert named["seqlets"].sum() < 3, control_table


def test_the_forward_only_motif_shows_as_strand_asymmetry_and_variant_effects_are_predict_differences(models):
    planted, _ = models
    refs = random_promoters(20, 11)
    forward = variant_effects(planted, refs, _with_motif(refs))
    reverse = variant_effects(planted, refs, _with_motif(refs, "CTTTTATA"))
    assert forward.mean() > 3 and abs(reverse.mean()) < 1, (forward.mean(), reverse.mean())
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
    assert {p.name for p in out.iterdir()} == {
        "mutagenesis.tsv", "attributions.tsv", "seqlets.tsv", "motifs.tsv", "mutagenesis_0.png", "attributions_0.png", "variant_effects.tsv",
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
