"""The DREAM 2022 reporter construct around each measured sequence (de Boer et al. 2020;
the challenge's data description), as plain constants.

Each random 80 bp region sits between two fixed flanks, which the DREAM files include:
LEFT_FLANK (17 bp) + 80 bp + RIGHT_FLANK (13 bp) = 110 bp. Upstream of the left flank the
plasmid goes on; PLASMID_UPSTREAM is its 100 bp right before LEFT_FLANK, as the LegNet
authors' preprocessing gives the plasmid (autosome-ru/LegNet, `PLASMID` in
legnet/train.py), so that a model may read a sequence in its real 5' context instead of
zero padding (`TrainConfig.pad`).
"""

LEFT_FLANK = "TGCATTTTTTTCACATC"
RANDOM_LENGTH = 80
RIGHT_FLANK = "GGTTACGGCTGTT"
PLASMID_UPSTREAM = (
    "AAAGGGCGAAAAACCGTCTATCAGGGCGATGGCCCACTACGTGAACCATC"
    "ACCCTAATCAAGTGCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAAC"
)

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement_text(sequence: str) -> str:
    """The reverse complement of a DNA string (N stays N)."""
    return sequence.translate(_COMPLEMENT)[::-1]
