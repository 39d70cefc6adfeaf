"""What a trained network learned, on the sequences you give it (no Ray; CPU or GPU). A tree
model has no gradients: it gets mutagenesis by its predictions (`substitution_effects`),
variant effects and calibration.

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
  default): one score per position, on the base that is there, and the hypothetical
  contribution of each of the four bases;
* motifs (`motifs`): TF-MoDISco (modisco-lite) clusters the seqlets of the attributions into
  motifs, each tested on the model by inserting it and shuffles of it into the sequences
  (`marginal_effects`) and matched by TOMTOM (memelite) against JASPAR's fungal CORE motifs
  (pyjaspar ships the database);
* variant effects (`variant_effects`): predicted alt - predicted ref for sequence pairs, the
  same numbers `raydream.predict` gives for each;
* embeddings (`penultimate`, `embed_2d`): a t-SNE map of the layer before the head.

Scores are reported over each sequence's own bases, not the padding around it in the window.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from raydream.core.errors import ConfigError
from raydream.data.construct import LEFT_FLANK, RANDOM_LENGTH, reverse_complement_text
from raydream.data.encode import add_flag_channels, one_hot_tensor, reverse_complement
from raydream.models.heads import expression_from_output
from raydream.results.inference import TrainedModel, check_sequences
from raydream.train.config import TrainConfig
from raydream.train.steps import input_codes

BASES = "ACGT"


def require_explain_packages() -> None:
    """Raise ConfigError naming the extra to install when a package of it is missing."""
    import importlib.util

    packages = {"tangermeme": "tangermeme", "captum": "captum", "logomaker": "logomaker", "pyjaspar": "pyjaspar",
                "modiscolite": "modisco-lite"}  # module: the package that installs it
    missing = [package for module, package in packages.items() if importlib.util.find_spec(module) is None]
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
    return ExpressionOfWindow(require_network(model), model.train_config)


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


@dataclass
class Attributions:
    """Integrated-gradients attributions of sequences' windows.

    scores (N, 4, L): each position's attribution, on the base that is there; a sequence's
    scores sum, up to `delta`, to its prediction minus the mean prediction of its references.
    hypothetical (N, 4, L): what each of the four bases would contribute at the position
    (the path-averaged gradients projected on that base minus the reference: DeepSHAP's
    "hypothetical contributions", which TF-MoDISco clusters); at the base that is there it
    equals the score. Both are 0 outside the sequences.
    """

    windows: Windows
    scores: np.ndarray
    hypothetical: np.ndarray
    delta: float


def attributions(model: TrainedModel, sequences, n_shuffles: int = 10, n_steps: int = 32, batch_size: int = 512,
                 random_state: int = 0, verbose: bool = False) -> Attributions:
    """Integrated gradients (captum) against dinucleotide-shuffled copies of each window as
    references (tangermeme's `dinucleotide_shuffle`), averaged over `n_shuffles` of them;
    `batch_size` inputs of the integration path at a time; a progress bar over the references
    with `verbose`.

    Integrated gradients was chosen over DeepLIFT because its completeness holds for any
    differentiable layer (raydream's networks use PReLU, SiLU, softplus and max-pools, which
    DeepLIFT's rules in tangermeme do not all cover; on a ResNet its deltas were about half
    the output).
    """
    from captum.attr import IntegratedGradients
    from tqdm.auto import tqdm

    f = _function(model)
    w = windows(sequences, f.config)
    x = w.x.to(model.device)
    references = _shuffled_references(w, n_shuffles, random_state).to(model.device)  # (N, S, 4, L)
    # without multiplying by (input - reference): the gradients averaged along the path
    ig = IntegratedGradients(f, multiply_by_inputs=False)
    hypothetical = torch.zeros_like(x, dtype=torch.float64)
    reference_output = torch.zeros(len(x), dtype=torch.float64, device=model.device)
    for s in tqdm(range(references.shape[1]), desc="integrated gradients", unit="reference", disable=not verbose):
        reference = references[:, s]
        gradients = ig.attribute(x, baselines=reference, target=0, n_steps=n_steps,
                                 internal_batch_size=batch_size).double()
        # base b's contribution: (one-hot b - reference) . gradients, at each position
        hypothetical += gradients - (reference.double() * gradients).sum(dim=1, keepdim=True)
        reference_output += _outputs(f, reference, batch_size)
    hypothetical /= references.shape[1]
    scores = hypothetical * x.double()
    change = _outputs(f, x, batch_size) - reference_output / references.shape[1]
    delta = float((scores.sum(dim=(1, 2)) - change).abs().max())
    return Attributions(w, _outside_zeroed(w, scores.cpu().numpy()), _outside_zeroed(w, hypothetical.cpu().numpy()),
                        delta)


def _outputs(f: ExpressionOfWindow, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([f(x[i: i + batch_size])[:, 0] for i in range(0, len(x), batch_size)]).double()


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


def substitution_effects(model: TrainedModel, sequences, batch_size: int = 4096) -> list[np.ndarray]:
    """In-silico mutagenesis by prediction, for any model (a tree model too): per sequence,
    (4, length) predicted(sequence with that base) - predicted(sequence), by
    `TrainedModel.predict`; 0 for the base that is there."""
    seqs = check_sequences(sequences)
    variants = np.array([s[:pos] + base + s[pos + 1:] for s in seqs for pos in range(len(s)) for base in BASES],
                        dtype=object)
    changed = model.predict_checked(variants, batch_size)
    unchanged = model.predict_checked(seqs, batch_size)
    ends = np.cumsum([4 * len(s) for s in seqs])
    return [block.reshape(-1, 4).T - y0 for block, y0 in zip(np.split(changed, ends[:-1]), unchanged)]


def variant_effects(model: TrainedModel, ref, alt, batch_size: int = 512) -> np.ndarray:
    """Predicted alt - predicted ref for each pair, by `TrainedModel.predict`."""
    ref, alt = check_sequences(ref), check_sequences(alt)
    if len(ref) != len(alt):
        raise ConfigError(f"{len(ref)} reference sequences but {len(alt)} alternatives")
    return model.predict_checked(alt, batch_size) - model.predict_checked(ref, batch_size)


MOTIF_DATABASE = "JASPAR CORE, fungi"


@functools.lru_cache(maxsize=1)
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


# TF-MoDISco's settings for 110 bp promoters rather than its defaults' kilobase chromatin
# windows: seqlets of a 15 bp core with 5 bp flanks (yeast TF sites are 6-12 bp); metaclusters
# and motifs of a few dozen seqlets, since a run explains hundreds of sequences, not tens of
# thousands of peaks; 10 Leiden runs rather than 50 for clusterings of hundreds of seqlets
# (on the planted-motif test, 50 took three times as long and found the same motifs).
MODISCO_SETTINGS = {"sliding_window_size": 15, "flank_size": 5, "min_metacluster_size": 20,
                    "final_min_cluster_size": 10, "target_seqlet_fdr": 0.05, "n_leiden_runs": 10}
MODISCO_PAD = 40
TRIM = 0.3  # a motif is trimmed to the positions of at least this share of its largest |contribution|
MATCHES = 3  # known motifs reported per discovered motif
SHOWN = 6  # discovered motifs printed (all are in motifs.tsv)


@dataclass
class Motif:
    """A motif that TF-MoDISco found: its contribution weight matrix (the mean contribution
    of each base at each position over its seqlets) and its base frequencies, trimmed to its
    core (4, width), and its closest known motifs as (name, p, q, offset, strand): TOMTOM's
    offset of the known motif against the core and 1 where it matched reverse-complemented."""

    name: str
    sign: str
    seqlets: int
    cwm: np.ndarray
    ppm: np.ndarray
    matches: list[tuple[str, float, float, int, int]]
    effect: float = float("nan")  # `marginal_effects`: inserting the consensus, the mean predicted change
    reverse_effect: float = float("nan")  # the same for its reverse complement
    shuffled_effect: float = float("nan")  # the same for shuffles of the consensus (their mean)
    effect_z: float = float("nan")  # (effect - shuffled_effect) / the shuffles' standard deviation

    def reverse_complement(self) -> None:
        self.cwm, self.ppm = self.cwm[::-1, ::-1].copy(), self.ppm[::-1, ::-1].copy()

    @property
    def consensus(self) -> str:
        return "".join(BASES[j] for j in self.ppm.argmax(axis=0))


def _stop_tqdm_monitor() -> None:
    """End tqdm's monitor thread (the first progress bar in a process starts it) and start no
    other. TF-MoDISco compiles its numba kernels ahead, in forked children and into numba's
    on-disk cache (so that later runs load them), only when no other thread is running; with
    the monitor alive it compiled them one by one in this process: about 23 s of a 48 s test
    on 2 cores."""
    import threading

    try:
        from tqdm import tqdm
        from tqdm._monitor import TMonitor
    except ImportError:  # no tqdm, or one laid out otherwise: no monitor to end
        return

    tqdm.monitor_interval = 0  # its subclasses (tqdm.auto's among them) read it from here
    for thread in threading.enumerate():
        if isinstance(thread, TMonitor):
            thread.exit()
            thread.tqdm_cls.monitor = None


def motifs(attr: Attributions, model: TrainedModel | None = None):
    """Motifs of the attributions, named by the known motifs they match: (seqlets, table,
    motifs); with the model that was explained, each motif's `marginal_effects` too.

    TF-MoDISco (modisco-lite) finds seqlets, the spans of high attribution, for bases that
    raise the prediction ("+") and that lower it ("-"), and clusters them by their
    hypothetical contributions into motifs (`MODISCO_SETTINGS`). Each motif is trimmed to its
    core as modisco-lite's report trims it (`TRIM`) and compared by TOMTOM (memelite; both
    strands) with every motif of `known_motifs`; its `MATCHES` best are reported with their
    p-value and the Benjamini-Hochberg q-value over the database (as TOMTOM reports them).

    seqlets: one row per seqlet of a motif, its core's position in its sequence and strand.
    table: one row per motif: sign, seqlets, consensus, mean contribution of a seqlet's core
    (in units of expression), the marginal effects (with a model) and the best matches.
    """
    import pandas as pd
    from memelite import tomtom
    from modiscolite.tfmodisco import TFMoDISco

    w = attr.windows
    # (N, L, 4), as TF-MoDISco takes them, with PAD empty positions on each side: it drops a
    # seqlet whose alignment to a motif reaches past the end of its sequence, and a motif
    # grows flanks, so without room around 110 bp windows it loses the sites near their ends
    pad = ((0, 0), (0, 0), (MODISCO_PAD, MODISCO_PAD))
    one_hot = np.pad(w.x.numpy(), pad).transpose(0, 2, 1).astype(np.float32)
    hypothetical = np.pad(attr.hypothetical, pad).transpose(0, 2, 1).astype(np.float32)
    _stop_tqdm_monitor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its numerical notes on small or signal-free inputs
        positive, negative = TFMoDISco(one_hot, hypothetical, **{"verbose": False, **MODISCO_SETTINGS})
    found, rows = [], []
    for sign, patterns in (("+", positive or []), ("-", negative or [])):
        for k, pattern in enumerate(patterns):
            cwm = np.asarray(pattern.contrib_scores, dtype=np.float64).T  # (4, width)
            ppm = np.asarray(pattern.sequence, dtype=np.float64).T
            support = np.abs(cwm).sum(axis=0)
            # and to the positions where most of its seqlets have a base rather than padding
            core = np.flatnonzero((support >= TRIM * support.max()) & (ppm.sum(axis=0) >= 0.5))
            if not len(core):
                continue
            a, b = int(core[0]), int(core[-1]) + 1
            name = f"{'pos' if sign == '+' else 'neg'}_{k}"
            ppm = ppm[:, a:b] / np.maximum(ppm[:, a:b].sum(axis=0, keepdims=True), 1e-9)
            found.append(Motif(name, sign, len(pattern.seqlets), cwm[:, a:b], ppm, []))
            for seqlet in pattern.seqlets:
                i = seqlet.example_idx
                # the core's window positions: counted from the seqlet's end on the reverse strand
                lo, hi = (seqlet.end - b, seqlet.end - a) if seqlet.is_revcomp else (seqlet.start + a,
                                                                                    seqlet.start + b)
                lo, hi = max(lo - MODISCO_PAD - w.start[i], 0), min(hi - MODISCO_PAD - w.start[i], w.length[i])
                rows.append((name, i, lo, hi, "-" if seqlet.is_revcomp else "+", str(w.sequences[i])[lo:hi]))
    seqlets = pd.DataFrame(rows, columns=["motif", "sequence", "start", "end", "strand", "bases"])
    if found and model is not None:
        for m in marginal_effects(model, w, found):  # those now written as their reverse complement
            flip = seqlets["motif"] == m.name
            seqlets.loc[flip, "strand"] = seqlets.loc[flip, "strand"].map({"+": "-", "-": "+"})
    if found:
        database = known_motifs()
        names = list(database)
        p, _, offsets, _, strands = (np.asarray(v, dtype=np.float64) for v in
                                     tomtom([m.ppm for m in found], list(database.values())))
        for m, p_row, offset_row, strand_row in zip(found, p, offsets, strands):
            q_row = _bh(p_row)
            m.matches = [(names[j], float(p_row[j]), float(q_row[j]), int(offset_row[j]), int(strand_row[j]))
                         for j in np.argsort(p_row, kind="stable")[:MATCHES]]
    columns = ["motif", "sign", "seqlets", "consensus", "mean_contribution", "marginal_effect", "reverse_effect",
               "shuffled_effect", "effect_z"]
    for j in range(1, MATCHES + 1):
        columns += [f"match_{j}", f"p_{j}", f"q_{j}"]
    table = [[m.name, m.sign, m.seqlets, m.consensus, float(m.cwm.sum()), m.effect, m.reverse_effect,
              m.shuffled_effect, m.effect_z]
             + [v for name, pv, qv, _, _ in m.matches for v in (name, pv, qv)] for m in found]
    return seqlets, pd.DataFrame(table, columns=columns), found


def marginal_effects(model: TrainedModel, w: Windows, found: list[Motif], n_shuffles: int = 20,
                     n_backgrounds: int = 100, batch_size: int = 512, random_state: int = 0) -> list[Motif]:
    """What each motif does to the model on its own: its consensus substituted into the
    middle of the random region of the first `n_backgrounds` sequences, the mean predicted
    change, for the consensus and for its reverse complement, beside the same for
    `n_shuffles` shuffles of the consensus, which keep its base composition. A motif the model has learned changes the prediction more than its
    shuffles; one that only stands for GC or AT content does about as much as they do.

    Each motif is turned to the strand whose effect is the larger in the direction of its
    sign (its consensus, matrices and matches then read on that strand): `Motif.effect` is
    that strand's, `reverse_effect` the other's, `shuffled_effect` the shuffles' mean and
    `effect_z` how many of their standard deviations the effect is above it. Returns the
    motifs that were turned.
    """
    f = _function(model)
    rng = np.random.default_rng(random_state)
    n = min(n_backgrounds, len(w.x))
    before = _outputs(f, w.x[:n].to(model.device), batch_size).cpu().numpy()
    turned = []
    for m in found:
        consensus = m.consensus
        shuffles = ["".join(rng.permutation(list(consensus))) for _ in range(n_shuffles)]
        forward, reverse = (_insertion_effect(f, w, n, before, motif, batch_size, model.device)
                            for motif in (consensus, reverse_complement_text(consensus)))
        if (reverse - forward) * (1 if m.sign == "+" else -1) > 0:
            m.reverse_complement()
            turned.append(m)
            forward, reverse = reverse, forward
            shuffles = [reverse_complement_text(t) for t in shuffles]
        null = np.array([_insertion_effect(f, w, n, before, t, batch_size, model.device) for t in shuffles])
        m.effect, m.reverse_effect, m.shuffled_effect = forward, reverse, float(null.mean())
        spread = float(null.std(ddof=1)) if len(null) > 1 else 0.0
        m.effect_z = (forward - m.shuffled_effect) / spread if spread > 0 else float("nan")
    return turned


def _insertion_effect(f: ExpressionOfWindow, w: Windows, n: int, before: np.ndarray, motif: str,
                      batch_size: int, device: torch.device) -> float:
    """The mean predicted change of the first n windows when `motif` is substituted in the
    middle of each one's random region (kept inside the sequence)."""
    width = len(motif)
    # one-hot (4, width); substituted by hand, as tangermeme's `substitute` refuses the
    # windows' N bases (0.25 in each channel)
    code = torch.tensor([[float(base == b) for base in motif] for b in BASES], dtype=w.x.dtype)
    at = np.clip(len(LEFT_FLANK) + (RANDOM_LENGTH - width) // 2, 0, w.length[:n] - width)
    fits = w.length[:n] >= width
    sites = w.start[:n] + at
    change = []
    for start in np.unique(sites[fits]):  # the sequences whose site is at the same window position
        rows = np.flatnonzero(fits & (sites == start))
        after = w.x[rows].clone()
        after[:, :, int(start): int(start) + width] = code
        change.append(_outputs(f, after.to(device, torch.float32), batch_size).cpu().numpy() - before[rows])
    return float(np.concatenate(change).mean()) if change else float("nan")


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


def random_snvs(sequences, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n (ref, alt) pairs: a sequence drawn at random (with replacement), and the same
    sequence with one base of its random region (after the 5' flank, 80 bp) changed to one of
    the three other bases (an N to any base), all drawn with `seed`."""
    from raydream.core.errors import DataError

    usable = [str(s) for s in sequences if len(s) > len(LEFT_FLANK)]
    if not usable:
        raise DataError(f"no sequence is longer than the {len(LEFT_FLANK)} bp 5' flank: no SNVs to draw")
    rng = np.random.default_rng(seed)
    ref, alt = [], []
    for _ in range(n):
        sequence = usable[int(rng.integers(len(usable)))]
        at = int(rng.integers(len(LEFT_FLANK), min(len(LEFT_FLANK) + RANDOM_LENGTH, len(sequence))))
        choices = BASES.replace(sequence[at], "")
        ref.append(sequence)
        alt.append(sequence[:at] + choices[int(rng.integers(len(choices)))] + sequence[at + 1:])
    return np.array(ref, dtype=object), np.array(alt, dtype=object)


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


def plot_motif(motif: Motif, path):
    """A discovered motif's contribution weight matrix as a logo, over the information-content
    logo of its best known match placed where TOMTOM aligned it."""
    import logomaker

    from raydream.results.report import pyplot, save_figure

    plt = pyplot()
    name, _, q, offset, strand = motif.matches[0]
    known = known_motifs()[name]
    known = _position_frame(known[::-1, ::-1] if strand else known)
    known.index = known.index - offset  # TOMTOM's offset: where the core starts in the known motif
    bits = logomaker.transform_matrix(known, from_type="probability", to_type="information")
    span = max(known.index.max() + 1, motif.cwm.shape[1]) - min(known.index.min(), 0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(4.0, span / 2.2), 3.8), sharex=True)
    logomaker.Logo(_position_frame(motif.cwm), ax=top, color_scheme="classic")
    tested = "" if np.isnan(motif.effect) else (f"; inserted {motif.effect:+.2f}, its shuffles "
                                                 f"{motif.shuffled_effect:+.2f}")
    top.set(ylabel="contribution", title=f"{motif.name}: {motif.seqlets} seqlets ({motif.sign}){tested}")
    logomaker.Logo(bits, ax=bottom, color_scheme="classic")
    bottom.set(ylabel="bits", xlabel="position in the motif", ylim=(0, 2),
               title=f"{name}{' (reverse complement)' if strand else ''}: TOMTOM q {q:.2g}")
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
                       description="What a trained model learned: in-silico mutagenesis, attributions and motifs (a "
                                   "network's), variant effects and calibration, as TSV files and PNG plots (no Ray).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint directory")
    source.add_argument("--experiment", help="an experiment directory: its best trial's checkpoint")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", help="sequences to explain: a DREAM file (its values give the calibration plots) "
                                       "or one per line")
    given.add_argument("--split", choices=("train", "val", "test"),
                       help="with --experiment: explain this split of the experiment's dataset (as a DREAM file)")
    p.add_argument("--out", required=True, help="a new directory for the TSV files and PNG plots")
    variants = p.add_mutually_exclusive_group()
    variants.add_argument("--variants", help="REF<TAB>ALT[<TAB>MEASURED_DIFFERENCE] per line: predicted alt - ref")
    variants.add_argument("--random-snvs", type=int, default=0, metavar="N",
                          help="instead of --variants: N random single-base substitutions of the random region "
                               "(positions 17-96) of the sequences, predicted alt - ref")
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
    from pathlib import Path

    import pandas as pd

    from raydream.core.errors import DataError
    from raydream.core.files import refuse_overwriting_inputs, temporary_sibling
    from raydream.results.inference import load_model, resolve_device
    from raydream.results.predict import best_checkpoints

    args = build_parser().parse_args(argv)
    for flag, value in (("--max-sequences", args.max_sequences), ("--shuffles", args.shuffles)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    for flag, value in (("--plots", args.plots), ("--embedding", args.embedding), ("--random-snvs", args.random_snvs)):
        if value < 0:
            raise ConfigError(f"{flag} must be >= 0, got {value}")
    resolve_device(args.device)
    require_explain_packages()
    out = Path(args.out)
    refuse_overwriting_inputs(out, [p for p in (args.input, args.variants) if p], "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out}: exists and is not an empty directory; give a new one")
    checkpoint = args.checkpoint or best_checkpoints(args.experiment, 1)[0]
    model = load_model(checkpoint, args.device)
    if args.embedding and not isinstance(model.module, nn.Module):  # before any input is read
        raise ConfigError(f"--embedding maps a network's layer before its head; a {model.name} tree model has none")
    if args.split and not args.experiment:
        raise ConfigError("--split explains a split of an experiment's dataset: give --experiment")
    sequences, measured = _sequences(args)
    variants = read_variants(args.variants) if args.variants else None
    if args.random_snvs:
        ref, alt = random_snvs(sequences, args.random_snvs)
        variants = ref, alt, None
    subsets = None
    if args.subsets:
        if measured is None:
            raise ConfigError("--subsets scores rows of --input against their measured values: give a DREAM file "
                              "(SEQUENCE<TAB>EXPRESSION) as --input")
        from raydream.results.evaluate import read_subsets

        subsets = read_subsets(args.subsets, len(sequences))
    chosen = sequences[: args.max_sequences]

    made = next((d for d in reversed(out.absolute().parents) if not d.exists()), None)  # the first we create
    staging = temporary_sibling(out)  # renamed into place at the end
    done = False
    try:  # made inside: a signal that lands just after mkdir still finds them removed
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        lines = _explain_bases(model, chosen, args, staging)
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
        os.replace(staging, out)  # over an empty `out` (checked above), in one step
        done = True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if not done and made is not None:  # nothing of a failed run is left behind
            shutil.rmtree(made, ignore_errors=True)
    from raydream.core.console import say

    for line in lines:
        say(line)
    say(f"written to {out}")
    return 0


def _embedding_rows(args, sequences: np.ndarray, measured: np.ndarray | None):
    """(title, sequences, measured values) of each panel of the embedding map."""
    if args.experiment:
        for split, title in (("train", "training rows"), ("val", "validation rows")):
            frame = experiment_split(args.experiment, split, args.embedding)
            yield title, frame["sequence"].to_numpy(dtype=object), frame["expression"].to_numpy(dtype=np.float64)
        return
    if measured is None:
        raise ConfigError("--embedding colours the map by measured expression: give a DREAM file as --input, or "
                          "an --experiment")
    yield "input rows", sequences[: args.embedding], measured[: args.embedding]


def _explain_bases(model: TrainedModel, chosen: np.ndarray, args, staging) -> list[str]:
    """Mutagenesis of the chosen sequences, and for a network their attributions and motifs:
    the TSV files and plots written into `staging`, and the lines to print."""
    import sys

    import pandas as pd

    network = isinstance(model.module, nn.Module)
    shown = min(args.plots, len(chosen))
    if network:
        w, effects = mutagenesis(model, chosen, verbose=sys.stderr.isatty())  # a progress bar in a terminal
        per_sequence = [per_position(w, effects, i) for i in range(len(chosen))]
    else:
        per_sequence = substitution_effects(model, chosen)
    rows = [(i, pos, sequence[pos], base, block[b, pos]) for i, (sequence, block) in enumerate(zip(chosen, per_sequence))
            for pos in range(block.shape[1]) for b, base in enumerate(BASES) if base != sequence[pos]]
    pd.DataFrame(rows, columns=["sequence", "position", "ref", "alt", "predicted_change"]).to_csv(
        staging / "mutagenesis.tsv", sep="\t", index=False, float_format="%.6g")
    for i in range(shown):
        plot_mutagenesis(per_sequence[i], chosen[i], f"sequence {i}: in-silico mutagenesis",
                         staging / f"mutagenesis_{i}.png")
    if not network:
        return [f"{len(chosen)} sequence(s): mutagenesis.tsv, plots of the first {shown}; a {model.name} tree model "
                f"has no gradients: no attributions or motifs"]
    attr = attributions(model, chosen, n_shuffles=args.shuffles, verbose=sys.stderr.isatty())
    rows = [(i, pos, chosen[i][pos], per_position(w, attr.scores, i)[:, pos].sum())
            for i in range(len(chosen)) for pos in range(w.length[i])]
    pd.DataFrame(rows, columns=["sequence", "position", "base", "attribution"]).to_csv(
        staging / "attributions.tsv", sep="\t", index=False, float_format="%.6g")
    for i in range(shown):
        plot_attributions(per_position(w, attr.scores, i), f"sequence {i}: integrated gradients "
                          f"({args.shuffles} shuffled references)", staging / f"attributions_{i}.png")
    seqlets, table, found = motifs(attr, model)
    seqlets.to_csv(staging / "seqlets.tsv", sep="\t", index=False)
    table.to_csv(staging / "motifs.tsv", sep="\t", index=False, float_format="%.6g")
    for motif in found:
        plot_motif(motif, staging / f"motif_{motif.name}.png")
    lines = [f"{len(chosen)} sequence(s): mutagenesis.tsv, attributions.tsv (largest convergence delta "
             f"{attr.delta:.3g}), plots of the first {shown}"]
    lines.append(f"{len(found)} motif(s) of {len(seqlets)} seqlet(s) (TF-MoDISco), matched against "
                 f"{MOTIF_DATABASE}: motifs.tsv, seqlets.tsv" + (", motif_*.png" if found else ""))
    lines += [f"  {m.name} ({m.seqlets} seqlets, {m.consensus}): contribution {m.cwm.sum():+.3g}, inserted "
              f"{m.effect:+.3g} (reverse {m.reverse_effect:+.3g}, shuffled {m.shuffled_effect:+.3g}, z "
              f"{m.effect_z:.2g}); best match {m.matches[0][0]} (q {m.matches[0][2]:.2g})" for m in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"  and {len(found) - SHOWN} more in motifs.tsv")
    return lines


def _sequences(args) -> tuple[np.ndarray, np.ndarray | None]:
    """The sequences to explain and their measured values (None for a file of sequences
    only): --split's rows, or --input, read once."""
    from raydream.core.files import require_regular_file
    from raydream.data.dream import first_line
    from raydream.results.predict import read_sequences

    if args.split:
        frame = experiment_split(args.experiment, args.split)
    else:
        try:
            dream = "\t" in first_line(require_regular_file(args.input))
        except (OSError, EOFError):  # not gzip after all, truncated, ...: read_sequences says which
            dream = False
        if not dream:
            return read_sequences(args.input), None
        from raydream.results.evaluate import read_truth

        frame = read_truth(args.input)
    return frame["sequence"].to_numpy(dtype=object), frame["expression"].to_numpy(dtype=np.float64)


def experiment_split(experiment, split: str, limit: int = 0):
    """A split of the dataset an experiment searched on, as a pandas frame (sequence,
    expression): its first `limit` rows when limit > 0."""
    from raydream.core.errors import DataError
    from raydream.data.prepare import read_split
    from raydream.results.table import read_experiment

    data = read_experiment(experiment).info.get("data")
    if not data:
        raise DataError(f"{experiment}: its search record names no dataset; give --checkpoint and a DREAM file as "
                        f"--input")
    return read_split(data, split, limit=limit).to_pandas()


def console() -> int:
    """The `raydream-explain` command: the same as `python -m raydream.explain`."""
    from raydream.core.errors import run_cli

    return run_cli(main)
