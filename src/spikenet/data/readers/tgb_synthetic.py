"""Synthetic datasets in TGB's node-property file formats: the shipped toy (``data/tgbn-toy``), a tgbn-trade-sized
stand-in and a tgbn-genre-sized one (``benchmarks/speed/tgbn_memory.py``).

``write_trade_like``: nations with a size each trade with a changing set of partners; the weight of u -> v in a
year is size_u · size_v · affinity_uv · exp(AR(1) noise). A pair trades in a year with a pair-specific
propensity and keeps last year's state with probability ``persistence``. The label of nation u at year y is
its share of trade with every partner in year y + 1 (TGB: "the proportion of trade ... during the next
year"), so the label times are every year but the last. Files: ``year,nation,trading nation,weight`` twice,
as tgbn-trade's, some names quoted (a comma inside) and one named ``NA``.

``write_genre_like``: users listen to genres of a slowly drifting taste on the days they are active; one
event per listen with a weight in (0, 1]. Every day d is a label time: each user's genre shares over the
events of days d .. d + 6 (TGB's tgbn-genre labels are weekly shares keyed by day). Files:
``ts,user_id,genre,weight``; the edge file is written in blocks of days, so generating 17.8 M events needs
one block of memory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TRADE_HEADER = ["year", "nation", "trading nation", "weight"]
GENRE_HEADER = ["ts", "user_id", "genre", "weight"]
DAY = 86_400


def nation_names(n: int) -> list[str]:
    """``n`` distinct nation names; two contain a comma (quoted in the CSV) and one is ``NA`` (Namibia's code,
    which a CSV reader must not take for a missing value)."""
    names = [f"Nation {i:03d}" for i in range(n)]
    if n > 3:
        names[1], names[2], names[3] = "Isles, Northern", "Republic of Somewhere, The", "NA"
    return names


def trade_like(num_nations: int, num_years: int, first_year: int = 1986, density: float = 0.3,
               persistence: float = 0.85, seed: int = 0) -> tuple[list[list], list[list]]:
    """(edge rows, label rows) of a trade-like network, each ``[year, nation, trading nation, weight]``."""
    rng = np.random.default_rng(seed)
    n = num_nations
    names = nation_names(n)
    size = rng.lognormal(0.0, 1.2, n)
    affinity = rng.lognormal(0.0, 1.0, (n, n))
    logit = np.log(density / (1 - density)) + 1.5 * rng.standard_normal((n, n))
    propensity = 1.0 / (1.0 + np.exp(-logit))
    off_diag = ~np.eye(n, dtype=bool)
    present = (rng.random((n, n)) < propensity) & off_diag
    noise = 0.4 * rng.standard_normal((n, n))
    weights = []
    for _ in range(num_years):
        redraw = rng.random((n, n)) >= persistence
        present = np.where(redraw, rng.random((n, n)) < propensity, present) & off_diag
        noise = 0.7 * noise + 0.4 * rng.standard_normal((n, n))
        w = np.round(1000 * size[:, None] * size[None, :] * affinity * np.exp(noise), 3)
        weights.append(np.where(present, np.maximum(w, 0.001), 0.0))
    edges, labels = [], []
    for k, w in enumerate(weights):
        year = first_year + k
        for u, v in zip(*np.nonzero(w), strict=True):
            edges.append([year, names[u], names[v], float(w[u, v])])
        if k > 0:  # the label of year - 1: the shares of this year's trade
            totals = w.sum(axis=1)
            for u, v in zip(*np.nonzero(w), strict=True):
                labels.append([year - 1, names[u], names[v], round(float(w[u, v] / totals[u]), 6)])
    return edges, labels


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """Rows as comma-separated values with a header line (quoted where a field needs it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)


def write_trade_like(folder: Path, name: str, **kwargs) -> tuple[int, int]:
    """``<folder>/<name>_edgelist.csv`` and ``_node_labels.csv`` from ``trade_like(**kwargs)``; (edges, label rows)."""
    edges, labels = trade_like(**kwargs)
    write_csv(folder / f"{name}_edgelist.csv", TRADE_HEADER, edges)
    write_csv(folder / f"{name}_node_labels.csv", TRADE_HEADER, labels)
    return len(edges), len(labels)


def write_genre_like(folder: Path, name: str, num_users: int = 992, num_genres: int = 513,
                     num_events: int = 17_858_395, num_days: int = 1580, start: int = 1_104_537_600,
                     active_share: float = 0.35, tastes: int = 12, window: int = 7, block_days: int = 20,
                     seed: int = 0) -> tuple[int, int]:
    """A tgbn-genre-like pair of files (see the module docstring); returns (events, label rows)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    users = np.array([f"user_{i:06d}" for i in range(num_users)], dtype=object)
    genres = np.array([f"genre {g:03d}" for g in range(num_genres)], dtype=object)
    taste = np.stack([rng.choice(num_genres, tastes, replace=False) for _ in range(num_users)])
    taste_p = rng.dirichlet(np.full(tastes, 0.5), num_users)
    per_day = np.full(num_days, num_events // num_days)
    per_day[: num_events % num_days] += 1
    edge_path, label_path = folder / f"{name}_edgelist.csv", folder / f"{name}_node_labels.csv"
    pd.DataFrame(columns=GENRE_HEADER).to_csv(edge_path, index=False)
    pd.DataFrame(columns=GENRE_HEADER).to_csv(label_path, index=False)
    daily: list[tuple[np.ndarray, np.ndarray]] = []  # per day: distinct user * G + genre keys, summed weights
    label_rows, next_day = 0, 0
    for block in range(0, num_days, block_days):
        parts = []
        for d in range(block, min(block + block_days, num_days)):
            drift = rng.random(num_users) < 1 / 60  # now and then a user swaps one genre of its taste
            taste[drift, rng.integers(0, tastes, int(drift.sum()))] = rng.integers(0, num_genres, int(drift.sum()))
            active = np.flatnonzero(rng.random(num_users) < active_share)
            u = active[rng.integers(0, active.size, per_day[d])]
            pick = (rng.random(per_day[d])[:, None] > np.cumsum(taste_p[u], axis=1)).sum(axis=1)
            g = taste[u, np.minimum(pick, tastes - 1)]
            w = np.round(rng.uniform(0.001, 1.0, per_day[d]), 3)
            ts = start + d * DAY + np.sort(rng.integers(1, DAY, per_day[d]))
            parts.append(pd.DataFrame({"ts": ts, "user_id": users[u], "genre": genres[g], "weight": w}))
            key, inv = np.unique(u * num_genres + g, return_inverse=True)
            daily.append((key, np.bincount(inv, weights=w)))
        pd.concat(parts).to_csv(edge_path, mode="a", header=False, index=False)
        complete = len(daily) - window + 1  # days whose whole window has been generated
        label_rows += _write_genre_labels(label_path, daily, next_day, complete, window, start, num_genres, users,
                                          genres)
        next_day = max(next_day, complete)
    label_rows += _write_genre_labels(label_path, daily, next_day, num_days, window, start, num_genres, users, genres)
    return num_events, label_rows


def _write_genre_labels(path: Path, daily: list, first: int, stop: int, window: int, start: int, num_genres: int,
                        users: np.ndarray, genres: np.ndarray) -> int:
    """Label rows of days ``first .. stop - 1`` whose windows are complete (or end at the last day)."""
    import pandas as pd

    frames = []
    for d in range(first, stop):
        keys = np.concatenate([daily[e][0] for e in range(d, min(d + window, len(daily)))])
        sums = np.concatenate([daily[e][1] for e in range(d, min(d + window, len(daily)))])
        key, inv = np.unique(keys, return_inverse=True)
        total = np.bincount(inv, weights=sums)
        u, g = np.divmod(key, num_genres)
        per_user = np.bincount(u, weights=total, minlength=users.size)
        frames.append(pd.DataFrame({"ts": start + d * DAY, "user_id": users[u], "genre": genres[g],
                                    "weight": np.round(total / per_user[u], 6)}))
    if not frames:
        return 0
    out = pd.concat(frames)
    out.to_csv(path, mode="a", header=False, index=False)
    return len(out)
