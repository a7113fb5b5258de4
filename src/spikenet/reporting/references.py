"""Published reference numbers that reports set beside our runs.

Source: J. Li et al., "Scaling Up Dynamic Graph Representation Learning via Spiking Neural Networks",
AAAI 2023 (arXiv:2208.10364), Table 2: SpikeNet's test Macro-F1 / Micro-F1 (%) for temporal node
classification at training ratios 0.4, 0.6 and 0.8 (val 0.05).
Only the values we have are listed: Tmall and Patent at 0.6 are left out, never filled in.

The dataset the paper calls DBLP has 28,085 nodes and 27 steps; the DBLP shipped in ``data/dblp/`` is the
25,387-node, 25-step HTNE/MNCI variant, so absolute numbers are not comparable with it, the ranking is.
"""

from __future__ import annotations

PAPER = "SpikeNet, paper Table 2 (Li et al., AAAI 2023)"

# dataset -> train size -> (Macro-F1 %, Micro-F1 %), as printed in the paper
SPIKENET_TABLE2: dict[str, dict[float, tuple[float, float]]] = {
    "dblp": {0.4: (70.88, 71.98), 0.6: (71.98, 72.35), 0.8: (74.65, 74.86)},
    "tmall": {0.4: (58.84, 63.52), 0.8: (62.40, 66.10)},
    "patent": {0.4: (83.53, 83.48), 0.8: (83.90, 83.88)},
}

# dataset -> why the paper's numbers and ours cannot be compared absolutely
DATA_NOTES = {
    "dblp": "the shipped DBLP is the 25,387-node / 25-step HTNE/MNCI variant, not the paper's 28,085-node / "
    "27-step one: absolute numbers are not comparable, the ranking is",
}


def spikenet_table2(dataset: str, train_size: float) -> dict[str, float] | None:
    """The paper's SpikeNet scores for ``dataset`` at ``train_size`` as ``metrics.json`` keys and fractions
    (``{"test_macro_f1": 0.7088, "test_micro_f1": 0.7198}``); None where the paper has no value for us."""
    row = SPIKENET_TABLE2.get(dataset.lower(), {}).get(round(float(train_size), 6))
    if row is None:
        return None
    macro, micro = row
    return {"test_macro_f1": macro / 100, "test_micro_f1": micro / 100}
