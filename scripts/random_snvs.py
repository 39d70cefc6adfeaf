"""Random single-nucleotide variants of sequences, as a `raydream.explain --variants` file.

    python scripts/random_snvs.py --experiment ray_results/resnet-... --split test --n 200 --out snvs.tsv
    python scripts/random_snvs.py --input test.txt --n 200 --out snvs.tsv

Each line is REF<TAB>ALT: a sequence drawn at random (with replacement) and the same
sequence with one base of its 80 bp random region (positions 17-96, between the constant
flanks) changed to one of the three other bases, all drawn with --seed. There are no measured
differences, so explain reports the predicted effects only; DREAM's own SNV pairs with their
measured values are scored through `--subsets`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from raydream.core.errors import ArgumentParser, ConfigError, DataError, run_cli

RANDOM_REGION = (17, 97)  # after the 17 bp 5' flank, before the 13 bp 3' flank of a 110 bp sequence


def random_snvs(sequences, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (ref, alt) pairs: alt is ref with one base of its random region substituted."""
    rng = np.random.default_rng(seed)
    usable = [str(s) for s in sequences if len(s) > RANDOM_REGION[0]]
    if not usable:
        raise DataError(f"no sequence is longer than the {RANDOM_REGION[0]} bp 5' flank")
    pairs = []
    for _ in range(n):
        ref = usable[int(rng.integers(len(usable)))]
        at = int(rng.integers(RANDOM_REGION[0], min(RANDOM_REGION[1], len(ref))))
        base = "ACGT".replace(ref[at], "")[int(rng.integers(3))] if ref[at] in "ACGT" else "ACGT"[int(rng.integers(4))]
        pairs.append((ref, ref[:at] + base + ref[at + 1:]))
    return pairs


def main(argv=None) -> int:
    from raydream.results.explain import experiment_split
    from raydream.results.predict import read_sequences

    p = ArgumentParser(prog="python scripts/random_snvs.py", description=__doc__.split("\n\n")[0])
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", help="a DREAM file or a file of sequences, one per line")
    given.add_argument("--experiment", help="an experiment directory: a split of the dataset it searched on")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="with --experiment (default test)")
    p.add_argument("--n", type=int, default=200, help="variants to draw (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="a new REF<TAB>ALT file")
    args = p.parse_args(argv)
    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    if out.exists():
        raise DataError(f"--out {out}: exists; give a new file")
    if args.experiment:
        sequences = experiment_split(args.experiment, args.split)["sequence"].to_numpy(dtype=object)
    else:
        sequences = read_sequences(args.input)
    pairs = random_snvs(sequences, args.n, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    staging.write_text("".join(f"{ref}\t{alt}\n" for ref, alt in pairs))
    staging.replace(out)
    print(f"{len(pairs)} single-nucleotide variants written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
