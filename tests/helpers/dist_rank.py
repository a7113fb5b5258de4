"""One rank of ``src/run.py`` started as torchrun starts it, recording what the ranks exchange.

Run by ``test_distributed.py`` in a fresh interpreter (never forked from the test process)::

    python tests/helpers/dist_rank.py RANK PORT[,PORT...] CWD OUT.pkl -- <run.py overrides>

It runs ``src/run.py`` as ``__main__`` once per port (torchrun's variables RANK, WORLD_SIZE=2, MASTER_PORT=port,
...), the first run with the default ``${now:...}`` run dir and the later ones in ``CWD/again``, and records
per run the shuffled training targets of every epoch, every evaluation gather and the final weights. The
records (or the error that stopped the rank) are pickled to ``OUT.pkl``.
"""

from __future__ import annotations

import os
import pickle
import runpy
import sys
import traceback
from pathlib import Path

RUN_SCRIPT = Path(__file__).resolve().parents[2] / "src" / "run.py"


def record_runs(rank: int, ports: list[int], args: list[str], cwd: Path) -> list[dict]:
    import torch
    from hydra.core.global_hydra import GlobalHydra

    from spikenet.training import NodeLoader, Trainer
    from spikenet.training.distributed import Distributed

    torch.set_num_threads(1)
    rec: dict = {}
    train_order, unshard, fit = NodeLoader.train_order, Distributed.unshard, Trainer.fit

    def record_order(self, targets, gen):
        order = train_order(self, targets, gen)
        rec["orders"].append(order.tolist())
        return order

    def record_gather(self, local, total):
        full = unshard(self, local, total)
        rec["gathers"].append((local.tolist(), total, full.tolist()))
        return full

    def record_fit(self):
        result = fit(self)
        rec.update(weights={k: v.numpy().copy() for k, v in self.model.state_dict().items()},
                   splits={k: getattr(self.task.splits, k).tolist() for k in ("train", "val", "test")},
                   labels=self.graph.labels.tolist(), result=result)
        return result

    NodeLoader.train_order, Distributed.unshard, Trainer.fit = record_order, record_gather, record_fit
    os.chdir(cwd)
    runs = []
    for i, port in enumerate(ports):
        os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        rec = {"orders": [], "gathers": []}
        again = [f"hydra.run.dir={cwd / 'again'}"] if i else []  # the first run leaves it to ${now:...}
        sys.argv = [str(RUN_SCRIPT), *args, *again]
        GlobalHydra.instance().clear()
        runpy.run_path(str(RUN_SCRIPT), run_name="__main__")  # as `python src/run.py ...`: pins the run dir
        runs.append(rec)
    return runs


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(RUN_SCRIPT.parent))  # as for `python src/run.py`: src/ first on the path
    rank, ports, cwd, out = int(argv[0]), [int(p) for p in argv[1].split(",")], Path(argv[2]), Path(argv[3])
    args = argv[5:] if argv[4:5] == ["--"] else argv[4:]
    try:
        result: object = record_runs(rank, ports, args, cwd)
        code = 0
    except BaseException:  # SystemExit from run.py included: report it instead of leaving the test guessing
        result, code = traceback.format_exc(), 1
    out.write_bytes(pickle.dumps((rank, result)))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
