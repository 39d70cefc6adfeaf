"""What a trained network learned, on the sequences you give it (no Ray; CPU or GPU).

The model is explained as the function it is when it predicts: the one-hot window of its
input (`TrainConfig.seq_len` long, aligned and padded as it was trained) to the predicted
expression, with the flag channels at 0 and both strands averaged when it was trained with
`rc_test_average` (`ExpressionOfWindow`). On top of it, with tangermeme (Schreiber lab; the
field's PyTorch toolkit for these analyses, which runs any `nn.Module` on one-hot input) and
captum (PyTorch's attribution library):

* in-silico mutagenesis (`mutagenesis`): every single-base substitution of each sequence,
  scored as predicted(alt) - predicted(sequence);
* attributions (`attributions`): integrated gradients (captum) against dinucleotide-shuffled
  copies of each sequence as references (tangermeme's `dinucleotide_shuffle`, 10 by
  default): one score per position, on the base that is there;
* motifs (`motifs`): seqlets of the attributions (tangermeme's `recursive_seqlets`), each
  matched by TOMTOM (memelite) against JASPAR's fungal CORE motifs (pyjaspar ships the
  database), grouped by their match;
* variant effects (`variant_effects`): predicted alt - predicted ref for sequence pairs, the
  same numbers `raydream.predict` gives for each;
* embeddings (`penultimate`, `embed_2d`): a t-SNE map of the layer before the head.

Scores are reported over each sequence's own bases, not the padding around it in the window.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from raydream.core.errors import ConfigError
from raydream.data.encode import add_flag_channels, one_hot_tensor, reverse_complement
from raydream.models.heads import expression_from_output
from raydream.results.inference import TrainedModel, check_sequences
from raydream.train.config import TrainConfig
from raydream.train.steps import input_codes

BASES = "ACGT"


def require_explain_packages() -> None:
    """Raise ConfigError naming the extra to install when a package of it is missing."""
    import importlib.util

    missing = [m for m in ("tangermeme", "captum", "logomaker", "pyjaspar") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"raydream.explain needs {' and '.join(missing)}, which are not installed: "
                          f"pip install 'raydream[explain]'")


class ExpressionOfWindow(nn.Module):
    """A trained network as a function of its one-hot input window: (N, 4, L) -> (N, 1)
    predicted expression, computed as `raydream.train.steps.predict` computes it."""

    def __init__(self, module: nn.Module, config: TrainConfig) -> None:
        super().__init__()
        self.module, self.config = module.eval(), config

    def _predict(self, x: torch.Tensor, reverse: bool) -> torch.Tensor:
        if self.config.input_flags:  # the reverse-strand flag, then the whole-number flag (0: unknown)
            n = x.shape[0]
            strand = torch.full((n,), reverse, dtype=torch.bool, device=x.device)
            x = add_flag_channels(x, strand, torch.zeros(n, dtype=torch.bool, device=x.device))
        return expression_from_output(self.module(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._predict(x, False)
        if self.config.rc_test_average:
            out = (out + self._predict(reverse_complement(x), True)) / 2
        return out.unsqueeze(-1)


@dataclass
class Windows:
    """Sequences as the model's one-hot input windows (N, 4, L), and where each sequence's
    own bases are in its window: positions start[i] .. start[i] + length[i] - 1."""

    sequences: np.ndarray
    x: torch.Tensor
    start: np.ndarray
    length: np.ndarray


def windows(sequences, config: TrainConfig) -> Windows:
    """The input windows of `sequences` (checked as `raydream.predict` checks them)."""
    seqs = check_sequences(sequences)
    codes = input_codes({"sequence": seqs}, config)
    lengths = np.minimum([len(s) for s in seqs], config.seq_len)
    starts = config.seq_len - lengths if config.align == "right" else np.zeros(len(seqs), dtype=int)
    return Windows(seqs, one_hot_tensor(torch.from_numpy(codes)), starts.astype(int), lengths.astype(int))


def require_network(model: TrainedModel) -> nn.Module:
    """The model's network; a tree model, which has no gradients, is refused."""
    if not isinstance(model.module, nn.Module):
        raise ConfigError(f"{model.checkpoint}: a {model.name} tree model has no gradients; explain a network's "
                          f"checkpoint")
    return model.module


def _function(model: TrainedModel) -> ExpressionOfWindow:
    from raydream.core.typed import from_dict

    return ExpressionOfWindow(require_network(model),
                              from_dict(TrainConfig, model.meta["train_config"], "train_config"))


def mutagenesis(model: TrainedModel, sequences, batch_size: int = 256,
                verbose: bool = False) -> tuple[Windows, np.ndarray]:
    """In-silico saturation mutagenesis: (windows, effects) with effects (N, 4, L): at each
    position of the window, predicted(sequence with that base) - predicted(sequence); 0 for
    the base that is there, and for the padding."""
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    f = _function(model)
    w = windows(sequences, f.config)
    with torch.no_grad(), warnings.catch_warnings():
        # tangermeme casts the input to integers: an N (0.25 in each channel) becomes no base
        # at all, for the unchanged sequence and its substitutions alike
        warnings.filterwarnings("ignore", message="X contains non-integer values")
        raw = saturation_mutagenesis(f, w.x, batch_size=batch_size, device=model.device, raw_outputs=True,
                                     verbose=verbose)
    # y_hat (N, 4, L, 1): the prediction with each base at each position; y0 (N, 1): unchanged
    effects = (raw.y_hat[..., 0] - raw.y0[:, :, None]).detach().cpu().numpy().astype(np.float64)
    return w, _outside_zeroed(w, effects)


def attributions(model: TrainedModel, sequences, n_shuffles: int = 10, n_steps: int = 32,
                 random_state: int = 0) -> tuple[Windows, np.ndarray, float]:
    """Integrated gradients (captum) against dinucleotide-shuffled copies of each window as
    references (tangermeme's `dinucleotide_shuffle`), averaged over `n_shuffles` of them:
    (windows, scores (N, 4, L), the largest convergence delta).

    A position's score sits on the base that is there (the attribution summed over the four
    channels); the scores of a sequence sum, up to the delta, to its prediction minus the
    mean prediction of its references. Integrated gradients was chosen over DeepLIFT because
    its completeness holds for any differentiable layer (raydream's networks use PReLU,
    SiLU, softplus and max-pools, which DeepLIFT's rules in tangermeme do not all cover; on a
    ResNet its deltas were about half the output).
    """
    from captum.attr import IntegratedGradients

    f = _function(model)
    w = windows(sequences, f.config)
    x = w.x.to(model.device)
    references = _shuffled_references(w, n_shuffles, random_state).to(model.device)  # (N, S, 4, L)
    ig = IntegratedGradients(f)
    total = torch.zeros_like(x, dtype=torch.float64)
    deltas = torch.zeros(len(x), dtype=torch.float64, device=model.device)
    for s in range(references.shape[1]):
        attr, delta = ig.attribute(x, baselines=references[:, s], target=0, n_steps=n_steps,
                                   return_convergence_delta=True)
        total += attr.double()
        deltas += delta.double()
    per_position = (total / references.shape[1]).sum(dim=1, keepdim=True)  # (N, 1, L)
    scores = (per_position * x.double()).cpu().numpy()
    delta = float((deltas / references.shape[1]).abs().max())
    return w, _outside_zeroed(w, scores), delta


def _shuffled_references(w: Windows, n: int, random_state: int) -> torch.Tensor:
    """`n` references per window: each sequence's own bases dinucleotide-shuffled (tangermeme),
    the padding around it as it is. An N (no base: 0.25 in each channel) is drawn as a
    random base first, since a shuffle needs one base per position."""
    from tangermeme.ersatz import dinucleotide_shuffle

    rng = np.random.default_rng(random_state)
    references = w.x.unsqueeze(1).repeat(1, n, 1, 1)  # (N, n, 4, L)
    for i in range(len(w.x)):
        span = w.x[i, :, w.start[i]: w.start[i] + w.length[i]].clone()
        unknown = (span.max(dim=0).values < 1).nonzero().flatten()
        span[:, unknown] = 0
        span[torch.from_numpy(rng.integers(0, 4, len(unknown))), unknown] = 1
        shuffled = dinucleotide_shuffle(span.unsqueeze(0), n=n, random_state=random_state + i)  # (1, n, 4, len)
        references[i, :, :, w.start[i]: w.start[i] + w.length[i]] = shuffled[0].to(references.dtype)
    return references


def _outside_zeroed(w: Windows, scores: np.ndarray) -> np.ndarray:
    positions = np.arange(scores.shape[-1])
    inside = (positions >= w.start[:, None]) & (positions < (w.start + w.length)[:, None])  # (N, L)
    return scores * inside[:, None, :]


def per_position(w: Windows, scores: np.ndarray, i: int) -> np.ndarray:
    """Sequence i's scores over its own bases: (4, length)."""
    return scores[i][:, w.start[i]: w.start[i] + w.length[i]]


def variant_effects(model: TrainedModel, ref, alt, batch_size: int = 512) -> np.ndarray:
    """Predicted alt - predicted ref for each pair, by `TrainedModel.predict`."""
    ref, alt = check_sequences(ref), check_sequences(alt)
    if len(ref) != len(alt):
        raise ConfigError(f"{len(ref)} reference sequences but {len(alt)} alternatives")
    return model.predict_checked(alt, batch_size) - model.predict_checked(ref, batch_size)


MOTIF_DATABASE = "JASPAR CORE, fungi"


def known_motifs() -> dict[str, np.ndarray]:
    """Known yeast transcription-factor motifs: JASPAR's CORE collection for fungi, as pyjaspar
    ships it (no download), name "MATRIX_ID NAME" -> probability matrix (4, width)."""
    from pyjaspar import jaspardb

    found = {}
    for motif in jaspardb().fetch_motifs(collection="CORE", tax_group=["fungi"]):
        counts = np.array([motif.counts[b] for b in BASES], dtype=np.float64)
        found[f"{motif.matrix_id} {motif.name}"] = counts / counts.sum(axis=0, keepdims=True)
    return found


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of a flat array of p-values."""
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def motifs(w: Windows, scores: np.ndarray, q_threshold: float = 0.05, threshold: float = 0.01):
    """Seqlets of the attributions, matched against known motifs: (seqlets, table).

    Seqlets: tangermeme's `recursive_seqlets` over each sequence's per-position scores, for
    positive and for negative scores (bases that raise and that lower the prediction), at
    `threshold` (its false-discovery setting). Each seqlet's bases are compared with every
    motif of `known_motifs` by TOMTOM (memelite; both strands); a seqlet's match is its best
    motif, its q-value the Benjamini-Hochberg value over its comparisons with every motif (as
    TOMTOM reports them).
    The table groups the seqlets by their match (q <= q_threshold; the rest under "no known
    motif"): per motif and sign, the seqlets, the median q-value, and the mean attribution of
    a seqlet (the sum of its scores, in units of expression).
    """
    import pandas as pd
    from memelite import tomtom
    from tangermeme.seqlet import recursive_seqlets

    per_position = torch.tensor(scores.sum(axis=1), dtype=torch.float32)  # (N, L): zero outside the sequences
    found = []
    for sign, values in (("+", per_position), ("-", -per_position)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on few positive scores in a control model
            seqlets = recursive_seqlets(values, threshold=threshold)
        if len(seqlets):
            seqlets = seqlets.rename(columns={"example_idx": "sequence"})
            seqlets["sign"] = sign
            found.append(seqlets)
    columns = ["sequence", "start", "end", "sign", "attribution", "bases", "match", "p_value", "q_value"]
    if not found:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=["match", "sign", "seqlets", "median_q",
                                                                     "mean_attribution"])
    seqlets = pd.concat(found, ignore_index=True)
    seqlets["attribution"] = [float(scores[i].sum(axis=0)[a:b].sum()) for i, a, b in
                              zip(seqlets["sequence"], seqlets["start"], seqlets["end"])]
    seqlets["bases"] = [str(w.sequences[i])[a - w.start[i]: b - w.start[i]] for i, a, b in
                        zip(seqlets["sequence"], seqlets["start"], seqlets["end"])]
    seqlets["start"] -= w.start[seqlets["sequence"]]  # positions in the sequence, not the window
    seqlets["end"] -= w.start[seqlets["sequence"]]
    database = known_motifs()
    names = list(database)
    queries = [w.x[i, :, a: b].numpy().astype(np.float64) for i, a, b in
               zip(seqlets["sequence"], seqlets["start"] + w.start[seqlets["sequence"]],
                   seqlets["end"] + w.start[seqlets["sequence"]])]
    p = tomtom(queries, list(database.values()))[0]  # (seqlets, motifs)
    q = np.vstack([_bh(row) for row in np.asarray(p, dtype=np.float64)])  # per seqlet, over the motifs, as TOMTOM
    best = np.argmin(p, axis=1)
    seqlets["match"] = [names[j] for j in best]
    seqlets["p_value"] = p[np.arange(len(best)), best]
    seqlets["q_value"] = q[np.arange(len(best)), best]
    grouped = seqlets.assign(match=seqlets["match"].where(seqlets["q_value"] <= q_threshold, "no known motif"))
    table = (grouped.groupby(["match", "sign"])
             .agg(seqlets=("q_value", "size"), median_q=("q_value", "median"),
                  mean_attribution=("attribution", "mean"))
             .reset_index().sort_values(["seqlets", "mean_attribution"], ascending=False).reset_index(drop=True))
    return seqlets[columns], table


def penultimate(model: TrainedModel, sequences, batch_size: int = 512) -> np.ndarray:
    """The network's representation of each sequence just before its head: the input of
    the module named `head` (pooled features; averaged over positions where the head is a
    1x1 convolution, as LegNet's), for the forward strand with the flag channels at 0."""
    f = _function(model)
    body = getattr(f.module, "body", f.module)  # a network wrapped with the GC/Tm scalars
    head = getattr(body, "head", None)
    if not isinstance(head, nn.Module):
        raise ConfigError(f"{model.checkpoint}: the {model.name} network has no `head` module to take its "
                          f"penultimate layer from")
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    try:
        w = windows(sequences, f.config)
        with torch.no_grad():
            for i in range(0, len(w.x), batch_size):
                f._predict(w.x[i: i + batch_size].to(model.device), False)
    finally:
        hook.remove()
    features = torch.cat([t.flatten(2).mean(-1) if t.ndim == 3 else t for t in seen])
    return features.cpu().numpy().astype(np.float64)


def embed_2d(features: np.ndarray, random_state: int = 0) -> np.ndarray:
    """A t-SNE map (scikit-learn's, PCA-initialised) of feature rows: (N, 2). t-SNE, as the
    seed report's maps of model outputs (its Fig. 6.1)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=random_state).fit_transform(features)


def plot_embedding(panels: list[tuple[str, np.ndarray, np.ndarray]], path):
    """One t-SNE panel per (title, 2-D points, measured expression), coloured by expression."""
    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    low = min(float(v.min()) for _, _, v in panels)
    high = max(float(v.max()) for _, _, v in panels)
    for ax, (title, points, values) in zip(axes[0], panels):
        shown = ax.scatter(points[:, 0], points[:, 1], c=values, s=4, cmap="viridis", vmin=low, vmax=high)
        ax.set(title=f"{title} (n={len(values):,})", xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    fig.colorbar(shown, ax=list(axes[0]), label="measured expression")
    fig.suptitle("The penultimate layer, mapped by t-SNE")
    return save_figure(plt, fig, path)


# ---- the command line: python -m raydream.explain ------------------------------------------

def read_variants(path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A variants file: REF<TAB>ALT per line, optionally a third column with the measured
    difference (alt - ref), in every line or none. Returns (ref, alt, measured or None).

    Raises:
        DataError: naming the file and line of the first bad row.
    """
    from raydream.core.errors import DataError
    from raydream.core.files import require_regular_file
    from raydream.data.dream import NUMBER_RE, RowRules, sequence_problem

    path = require_regular_file(path)
    rules, rows = RowRules(), []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; expected REF<TAB>ALT[<TAB>MEASURED] per line") from None
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) not in (2, 3):
            raise DataError(f"{path}, line {number}: {len(fields)} tab-separated field(s); expected "
                            f"REF<TAB>ALT or REF<TAB>ALT<TAB>MEASURED_DIFFERENCE")
        for name, seq in zip(("REF", "ALT"), fields[:2]):
            if problem := sequence_problem(seq.strip().upper(), rules):
                raise DataError(f"{path}, line {number}: {name} {problem}")
        if len(fields) == 3 and not re.match(NUMBER_RE, fields[2].strip()):
            raise DataError(f"{path}, line {number}: measured difference {fields[2][:40]!r} is not a number")
        rows.append(fields)
    if not rows:
        raise DataError(f"{path}: file is empty; expected REF<TAB>ALT[<TAB>MEASURED] per line")
    if len({len(r) for r in rows}) > 1:
        raise DataError(f"{path}: some lines have a measured difference and some do not; give it on every line "
                        f"or none")
    ref = np.array([r[0].strip().upper() for r in rows], dtype=object)
    alt = np.array([r[1].strip().upper() for r in rows], dtype=object)
    measured = np.array([float(r[2]) for r in rows]) if len(rows[0]) == 3 else None
    return ref, alt, measured


def _position_frame(scores: np.ndarray):
    """(4, length) scores as logomaker's frame: a row per position, a column per base."""
    import pandas as pd

    return pd.DataFrame(scores.T, columns=list(BASES))


def plot_mutagenesis(effects: np.ndarray, sequence: str, title: str, path):
    """A heatmap of every substitution's predicted change (4 x length) over a logo of how
    much the present base matters (minus the mean change of its three substitutions)."""
    import logomaker

    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    length = effects.shape[1]
    present = np.array([[base == b for b in sequence[:length]] for base in BASES], dtype=float)
    importance = -effects.sum(axis=0) / 3.0 * present  # on the base that is there
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, length / 8), 4.2), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.3]})
    logomaker.Logo(_position_frame(importance), ax=top, color_scheme="classic")
    top.set(ylabel="-mean change", title=title)
    limit = float(np.abs(effects).max()) or 1.0
    image = bottom.imshow(effects, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                          extent=(-0.5, length - 0.5, 3.5, -0.5))
    bottom.set(yticks=range(4), yticklabels=list(BASES), xlabel="position in the sequence (0 = 5' end)",
               ylabel="substituted base")
    fig.colorbar(image, ax=[top, bottom], label="predicted change", shrink=0.8)
    return save_figure(plt, fig, path)


def plot_attributions(scores: np.ndarray, title: str, path):
    """A sequence logo of the attributions (4 x length, each position's on its base)."""
    import logomaker

    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(8, scores.shape[1] / 8), 2.2))
    logomaker.Logo(_position_frame(scores), ax=ax, color_scheme="classic")
    ax.set(xlabel="position in the sequence (0 = 5' end)", ylabel="attribution", title=title)
    return save_figure(plt, fig, path)


def plot_residuals(measured: np.ndarray, predicted: np.ndarray, path):
    """Residuals (predicted - measured) across the measured range: their spread per bin of
    measured expression (median, and the 10th-90th percentile band)."""
    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    residual = predicted - measured
    edges = np.linspace(measured.min(), measured.max() + 1e-9, 19)
    which = np.digitize(measured, edges) - 1
    centres, median, low, high, counts = [], [], [], [], []
    for b in range(len(edges) - 1):
        inside = residual[which == b]
        if len(inside):
            centres.append((edges[b] + edges[b + 1]) / 2)
            median.append(np.median(inside))
            low.append(np.percentile(inside, 10))
            high.append(np.percentile(inside, 90))
            counts.append(len(inside))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.fill_between(centres, low, high, alpha=0.3, label="10th-90th percentile")
    ax.plot(centres, median, "o-", label="median")
    ax.axhline(0, color="0.4", lw=1, ls="--")
    ax.set(xlabel="measured expression", ylabel="predicted - measured",
           title=f"Residuals across the expression range (n={len(measured):,})")
    ax.legend(loc="best", fontsize=8)
    return save_figure(plt, fig, path)


def subset_scores(subsets: dict[str, np.ndarray], measured: np.ndarray, predicted: np.ndarray):
    """A row per subset: its rows (or pairs), Pearson r^2 and Spearman as `raydream.evaluate`
    scores it (`dream_scores`: a paired subset on alt - ref differences), and for single
    subsets R^2 and the mean residual (predicted - measured)."""
    import pandas as pd

    from raydream.core.metrics import regression_metrics
    from raydream.results.evaluate import PAIRED, dream_scores

    official = dream_scores(predicted, measured, subsets)
    rows = []
    for name, index in [("all", np.arange(len(measured))), *subsets.items()]:
        single = name not in PAIRED
        fit = regression_metrics(measured[index], predicted[index])["r2"] if single and len(index) >= 2 else np.nan
        residual = float(np.mean(predicted[index] - measured[index])) if single else np.nan
        rows.append((name, len(index), official[f"pearson_r2_{name}"], official[f"spearman_{name}"], fit, residual))
    return pd.DataFrame(rows, columns=["subset", "rows_or_pairs", "pearson_r2", "spearman", "r2", "mean_residual"])


def plot_subset_residuals(subsets: dict[str, np.ndarray], measured: np.ndarray, predicted: np.ndarray, path):
    """Residuals (predicted - measured) of each single subset as a box, and for each paired
    subset predicted against measured differences."""
    from raydream.results.evaluate import PAIRED
    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    single = {n: i for n, i in subsets.items() if n not in PAIRED}
    paired = {n: i for n, i in subsets.items() if n in PAIRED}
    fig, axes = plt.subplots(1, 1 + len(paired), figsize=(5 + 3.6 * len(paired), 3.8), squeeze=False)
    ax = axes[0][0]
    if single:
        ax.boxplot([predicted[i] - measured[i] for i in single.values()], showfliers=False)
        ax.set_xticks(range(1, len(single) + 1), [f"{n}\n(n={len(i)})" for n, i in single.items()], fontsize=8)
    ax.axhline(0, color="0.4", lw=1, ls="--")
    ax.set(ylabel="predicted - measured", title="Residuals by subset")
    for ax, (name, pairs) in zip(axes[0][1:], paired.items()):
        ax.scatter(measured[pairs[:, 0]] - measured[pairs[:, 1]], predicted[pairs[:, 0]] - predicted[pairs[:, 1]], s=6)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set(xlabel="measured alt - ref", ylabel="predicted alt - ref", title=f"{name} (n={len(pairs)})")
    return save_figure(plt, fig, path)


def build_parser():
    from raydream.core.errors import ArgumentParser

    p = ArgumentParser(prog="python -m raydream.explain",
                       description="What a trained network learned: in-silico mutagenesis, attributions, variant "
                                   "effects and calibration, as TSV files and PNG plots (no Ray).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint directory")
    source.add_argument("--experiment", help="an experiment directory: its best trial's checkpoint")
    p.add_argument("--input", required=True,
                   help="sequences to explain: a DREAM file (its values give the calibration plots) or one per line")
    p.add_argument("--out", required=True, help="a new directory for the TSV files and PNG plots")
    p.add_argument("--variants", help="REF<TAB>ALT[<TAB>MEASURED_DIFFERENCE] per line: predicted alt - ref")
    p.add_argument("--subsets", help="a DREAM subset table of --input's rows (subset<TAB>index<TAB>ref_index, as "
                                     "raydream.evaluate reads it): calibration per subset, and the paired subsets' "
                                     "variant effects against their measured differences")
    p.add_argument("--max-sequences", type=int, default=100,
                   help="explain the first N sequences of --input (default 100; calibration uses all)")
    p.add_argument("--plots", type=int, default=5, help="sequences drawn as mutagenesis and logo plots (default 5)")
    p.add_argument("--shuffles", type=int, default=10, help="dinucleotide-shuffled references per sequence (default 10)")
    p.add_argument("--embedding", type=int, default=0, metavar="ROWS",
                   help="also map the penultimate layer by t-SNE, coloured by measured expression: ROWS rows of "
                        "the experiment's train and validation splits (with --experiment), else of --input "
                        "(a DREAM file); default 0: no map")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    return p


def main(argv=None) -> int:
    import os
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    import pandas as pd

    from raydream.core.errors import DataError
    from raydream.core.files import refuse_overwriting_inputs
    from raydream.results.inference import load_model, resolve_device
    from raydream.results.predict import best_checkpoints, read_sequences

    args = build_parser().parse_args(argv)
    for flag, value in (("--max-sequences", args.max_sequences), ("--shuffles", args.shuffles)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if args.plots < 0 or args.embedding < 0:
        raise ConfigError(f"--plots and --embedding must be >= 0, got {args.plots} and {args.embedding}")
    resolve_device(args.device)
    require_explain_packages()
    out = Path(args.out)
    refuse_overwriting_inputs(out, [p for p in (args.input, args.variants) if p], "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out}: exists and is not an empty directory; give a new one")
    checkpoint = args.checkpoint or best_checkpoints(args.experiment, 1)[0]
    model = load_model(checkpoint, args.device)
    require_network(model)  # before any input is read
    from raydream.core.files import require_regular_file
    from raydream.data.dream import first_line

    measured = None
    try:
        dream = "\t" in first_line(require_regular_file(args.input))
    except (OSError, EOFError):  # not gzip after all, truncated, ...: read_sequences says which
        dream = False
    if dream:  # read once: its sequences, and the measured values the calibration needs
        from raydream.results.evaluate import read_truth

        truth = read_truth(args.input)
        sequences = truth["sequence"].to_numpy(dtype=object)
        measured = truth["expression"].to_numpy(dtype=np.float64)
    else:
        sequences = read_sequences(args.input)
    variants = read_variants(args.variants) if args.variants else None
    subsets = None
    if args.subsets:
        if measured is None:
            raise ConfigError("--subsets scores rows of --input against their measured values: give a DREAM file "
                              "(SEQUENCE<TAB>EXPRESSION) as --input")
        from raydream.results.evaluate import read_subsets

        subsets = read_subsets(args.subsets, len(sequences))
    chosen = sequences[: args.max_sequences]

    made = next((d for d in reversed(out.absolute().parents) if not d.exists()), None)  # the first we create
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # renamed into place at the end
    done = False
    try:
        w, effects = mutagenesis(model, chosen, verbose=sys.stderr.isatty())  # a progress bar in a terminal
        rows = []
        for i in range(len(chosen)):
            block = per_position(w, effects, i)
            for pos in range(block.shape[1]):
                for b, base in enumerate(BASES):
                    if base != chosen[i][pos]:
                        rows.append((i, pos, chosen[i][pos], base, block[b, pos]))
        pd.DataFrame(rows, columns=["sequence", "position", "ref", "alt", "predicted_change"]).to_csv(
            staging / "mutagenesis.tsv", sep="\t", index=False, float_format="%.6g")
        _, scores, delta = attributions(model, chosen, n_shuffles=args.shuffles)
        rows = [(i, pos, chosen[i][pos], per_position(w, scores, i)[:, pos].sum())
                for i in range(len(chosen)) for pos in range(w.length[i])]
        pd.DataFrame(rows, columns=["sequence", "position", "base", "attribution"]).to_csv(
            staging / "attributions.tsv", sep="\t", index=False, float_format="%.6g")
        seqlets, table = motifs(w, scores)
        seqlets.to_csv(staging / "seqlets.tsv", sep="\t", index=False, float_format="%.6g")
        table.to_csv(staging / "motifs.tsv", sep="\t", index=False, float_format="%.6g")
        for i in range(min(args.plots, len(chosen))):
            plot_mutagenesis(per_position(w, effects, i), chosen[i], f"sequence {i}: in-silico mutagenesis",
                             staging / f"mutagenesis_{i}.png")
            plot_attributions(per_position(w, scores, i), f"sequence {i}: integrated gradients "
                              f"({args.shuffles} shuffled references)", staging / f"attributions_{i}.png")
        lines = [f"{len(chosen)} sequence(s): mutagenesis.tsv, attributions.tsv (largest convergence delta "
                 f"{delta:.3g}), plots of the first {min(args.plots, len(chosen))}"]
        known = table[table["match"] != "no known motif"]
        lines.append(f"{len(seqlets)} seqlet(s), {int(known['seqlets'].sum()) if len(known) else 0} matched to "
                     f"{MOTIF_DATABASE} (q <= 0.05): motifs.tsv" +
                     (f"; most often {known.iloc[0]['match']} ({known.iloc[0]['sign']}, {known.iloc[0]['seqlets']})"
                      if len(known) else ""))
        if variants is not None:
            ref, alt, diff = variants
            effect = variant_effects(model, ref, alt)
            frame = pd.DataFrame({"ref": ref, "alt": alt, "predicted_effect": effect})
            if diff is not None:
                from raydream.results.evaluate import correlations

                frame["measured_effect"] = diff
                r2, rho = correlations(effect, diff)
                lines.append(f"variant effects of {len(ref)} pair(s): Pearson r^2 {r2:.4f}, Spearman {rho:.4f} "
                             f"against the measured differences (the DREAM pair score)")
            else:
                lines.append(f"variant effects of {len(ref)} pair(s): variant_effects.tsv")
            frame.to_csv(staging / "variant_effects.tsv", sep="\t", index=False, float_format="%.6g")
        if measured is not None:
            from raydream.core.metrics import regression_metrics
            from raydream.results.report import plot_pred_vs_measured

            predicted = model.predict(sequences)
            plot_pred_vs_measured(measured, predicted, "Predicted vs. measured", staging / "calibration_density.png")
            plot_residuals(measured, predicted, staging / "calibration_residuals.png")
            pd.DataFrame({"sequence": sequences, "measured": measured, "predicted": predicted}).to_csv(
                staging / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
            scores = regression_metrics(measured, predicted)
            lines.append(f"calibration on all {len(sequences):,} rows: R^2 {scores['r2']:.4f}, Pearson "
                         f"{scores['pearson']:.4f}")
        if subsets is not None:
            by_subset = subset_scores(subsets, measured, predicted)
            by_subset.to_csv(staging / "subsets.tsv", sep="\t", index=False, float_format="%.6g")
            plot_subset_residuals(subsets, measured, predicted, staging / "calibration_subsets.png")
            lines.append("per DREAM subset (subsets.tsv): " + ", ".join(
                f"{row.subset} {row.pearson_r2:.3f}" for row in by_subset.itertuples()) + " (Pearson r^2)")
        if args.embedding:
            panels = []
            for title, seqs, values in _embedding_rows(args, sequences, measured):
                panels.append((title, embed_2d(penultimate(model, seqs)), values))
            plot_embedding(panels, staging / "embedding.png")
            lines.append("t-SNE map of the penultimate layer: embedding.png (" +
                         ", ".join(f"{t} {len(v):,} rows" for t, _, v in panels) + ")")
        if out.exists():
            out.rmdir()  # empty: checked above
        os.replace(staging, out)
        done = True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if not done and made is not None:  # nothing of a failed run is left behind
            shutil.rmtree(made, ignore_errors=True)
    for line in lines:
        print(f"raydream: {line}")
    print(f"raydream: written to {out}")
    return 0


def _embedding_rows(args, sequences: np.ndarray, measured: np.ndarray | None):
    """(title, sequences, measured values) of each panel of the embedding map."""
    if args.experiment:
        from raydream.core.errors import DataError
        from raydream.data.prepare import read_split
        from raydream.results.table import read_experiment

        data = read_experiment(args.experiment).info.get("data")
        if not data:
            raise DataError(f"{args.experiment}: its search record names no dataset to map; give --checkpoint and "
                            f"a DREAM file as --input")
        for split, title in (("train", "training rows"), ("val", "validation rows")):
            frame = read_split(data, split, limit=args.embedding).to_pandas()
            yield title, frame["sequence"].to_numpy(dtype=object), frame["expression"].to_numpy(dtype=np.float64)
        return
    if measured is None:
        raise ConfigError("--embedding colours the map by measured expression: give a DREAM file as --input, or "
                          "an --experiment")
    yield "input rows", sequences[: args.embedding], measured[: args.embedding]


def console() -> int:
    """The `raydream-explain` command: the same as `python -m raydream.explain`."""
    from raydream.core.errors import run_cli

    return run_cli(main)
