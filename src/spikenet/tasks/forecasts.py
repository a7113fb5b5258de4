"""TGB's training-free node-property forecasts: persistence and moving average, scored like a model.

Both walk the label times in order. A node's prediction at label time L_k is its state before L_k
(zeros if it has none yet); after scoring, the node's label of L_k updates the state. Persistence
keeps the last label; TGB's ``MovingAverage`` sets the first label and then updates
state <- (state · (w - 1) + label) / w (``modules/heuristics.py``; TGB runs it with w = 7, genre 6).
Only label times that some split scores update the states, as in TGB's loop. Memory: one [N, C]
state, never all predictions.
"""

from __future__ import annotations

import numpy as np

from spikenet.data.properties import NodeProperties
from spikenet.tasks.ndcg import Scorer, block_ndcg, mean_over_times

FORECASTS = ("persistence", "moving_average")


def forecast_scores(props: NodeProperties, time_split: np.ndarray, num_nodes: int, score: Scorer,
                    splits: tuple[str, ...], names: tuple[str, ...], window: int) -> dict[str, dict[str, float]]:
    """``{forecast: {'<split>_ndcg@10': value}}`` for the splits ``splits`` (names of ``time_split``'s 0, 1, 2)."""
    if window < 1:
        raise ValueError(f"task.moving_average_window must be >= 1, got {window}")
    wanted = {names.index(s) for s in splits}
    states = {f: np.zeros((num_nodes, props.dim)) for f in FORECASTS}
    seen = np.zeros(num_nodes, dtype=bool)
    per_time: dict[str, dict[int, list[float]]] = {f: {s: [] for s in wanted} for f in FORECASTS}
    for k in np.flatnonzero(time_split >= 0):
        rows = props.rows_of_step(int(k))
        if rows.size == 0:
            continue
        nodes = props.row_node[rows]
        truth = props.dense(rows, np.float64)
        if int(time_split[k]) in wanted:
            for f in FORECASTS:
                per_time[f][int(time_split[k])].append(block_ndcg(score, truth, states[f][nodes]))
        states["persistence"][nodes] = truth
        first = ~seen[nodes]
        average = states["moving_average"]
        average[nodes] = np.where(first[:, None], truth, (average[nodes] * (window - 1) + truth) / window)
        seen[nodes] = True
    return {f: {f"{names[s]}_ndcg@10": mean_over_times(per_time[f][s]) for s in sorted(wanted)} for f in FORECASTS}
