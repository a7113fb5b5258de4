"""Data-parallel training: the one place that reads the launcher's rank variables.

A run is distributed when a launcher started several processes for it:

* ``torchrun --nproc_per_node=N src/run.py ...`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``);
* Hydra's submitit launcher with ``tasks_per_node`` > 1 (``conf/launcher/slurm_ddp.yaml``; submitit's
  job environment, SLURM or local);
* ``srun python src/run.py ...`` inside an allocation (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``
  or ``SLURM_NTASKS``, ``SLURM_LOCALID``; the first host of the node list as master unless
  ``MASTER_ADDR`` is set; ``MASTER_PORT`` defaults to one derived from the job id).

``setup`` turns that environment into a ``Distributed`` handle (NCCL on GPUs, one GPU per local rank;
gloo on CPUs; ``cores // local world size`` torch threads) that the trainer is given. It wraps the
model in ``DistributedDataParallel`` (gradients averaged over ranks), shards evaluation targets and
gathers the predictions back in order, sums per-rank figures and derives per-rank seeds. Training
targets are sharded by ``NodeLoader``. Only rank 0 writes outputs (``is_main``).

Every process of a ``torchrun`` or ``srun`` launch runs Hydra itself, and ``${now:...}`` in the run
directory may differ between them; ``pin_run_dir`` (called before Hydra starts) lets rank 0's clock
decide, through the rendezvous store the process group is later built on.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

TIMEOUT = timedelta(minutes=30)  # rendezvous and collectives: a rank that does not arrive fails the run
_STAMP_KEY = "spikenet/run_stamp"
_pending_store: tuple[Any, int, int] | None = None  # from pin_run_dir, reused by setup's process group
# Process groups of this process, held until the next setup or exit (see _hold_group).
_held_groups: list[Any] = []


def _release_held_groups() -> None:
    """Free the process groups of earlier runs (from Python: their binding releases the GIL meanwhile)."""
    _held_groups.clear()


def _hold_group() -> None:
    """Keep the default process group alive past ``close``, until the next ``setup`` or interpreter exit.

    DDP's C++ Reducer owns the process group too, and its Python binding frees it with the GIL held. When the
    Reducer is the last owner, ProcessGroupGloo's destructor joins the gloo worker threads with the GIL held,
    while a worker may still be dropping the last collective's tensors, which needs the GIL: a deadlock
    (seen: one rank stuck in that join as run.py's main returned, its peer waiting in the next rendezvous).
    Held here, the group outlives the Reducer and is freed later from Python, whose ProcessGroup binding
    releases the GIL, with its workers long idle.
    """
    _held_groups.append(dist.distributed_c10d._get_default_group())


atexit.register(_release_held_groups)  # while the interpreter is still whole


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a multi-process launch (world_size 1 for a plain run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    source: str = "single"  # single | torchrun | submitit | srun

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _first_int(text: str | None, default: int) -> int:
    match = re.search(r"\d+", text or "")
    return int(match.group()) if match else default


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[003-005,009],cpu1`` -> ``gpu003``."""
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\]([^,]*))?", nodelist.strip())
    if not match or not match.group(0):
        raise ValueError(f"cannot read a host from the SLURM node list '{nodelist}'")
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0] + (suffix or "")


def _derived_port(job_id: str) -> int:
    """A port in [15000, 35000) from the job id, so concurrent jobs on one node rarely collide."""
    return 15000 + zlib.crc32(job_id.encode()) % 20000


def _submitit_env(environ: Mapping[str, str]) -> LaunchEnv:
    import submitit  # present whenever submitit started this process

    job = submitit.JobEnvironment()
    world, nodes = job.num_tasks, max(job.num_nodes, 1)
    local_addr = environ.get("SUBMITIT_EXECUTOR") == "local"
    return LaunchEnv(
        rank=job.global_rank,
        world_size=world,
        local_rank=job.local_rank,
        local_world_size=max(1, world // nodes),
        master_addr=environ.get("MASTER_ADDR") or ("127.0.0.1" if local_addr else job.hostnames[0]),
        master_port=int(environ.get("MASTER_PORT") or _derived_port(str(job.job_id))),
        source="submitit",
    )


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """Read the rank variables of torchrun, submitit or srun (in that order); a plain run otherwise."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        return LaunchEnv(
            rank=int(env["RANK"]),
            world_size=world,
            local_rank=int(env.get("LOCAL_RANK", 0)),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", 29500)),
            source="torchrun",
        )
    if env.get("SUBMITIT_EXECUTOR"):
        return _submitit_env(env)
    if "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:  # a task of an srun step (not the batch script)
        world = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
        if world > 1:
            nodes = int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
            per_node = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
            return LaunchEnv(
                rank=int(env["SLURM_PROCID"]),
                world_size=world,
                local_rank=int(env.get("SLURM_LOCALID", 0)),
                local_world_size=_first_int(per_node, max(1, world // nodes)),
                master_addr=env.get("MASTER_ADDR") or first_host(nodelist),
                master_port=int(env.get("MASTER_PORT") or _derived_port(env.get("SLURM_JOB_ID", "0"))),
                source="srun",
            )
    return LaunchEnv()


def _rendezvous(env: LaunchEnv) -> tuple[Any, int, int]:
    """(store, rank, world_size) of this launch; torchrun's agent store when torchrun started us."""
    if env.source == "torchrun":
        return next(dist.rendezvous("env://", timeout=TIMEOUT))
    url = f"tcp://{env.master_addr}:{env.master_port}"
    return next(dist.rendezvous(url, rank=env.rank, world_size=env.world_size, timeout=TIMEOUT))


def default_run_dir(conf_dir: Path) -> str:
    """``hydra.run.dir`` of the primary config, uninterpolated."""
    from omegaconf import OmegaConf

    return str(OmegaConf.to_container(OmegaConf.load(conf_dir / "config.yaml").hydra.run, resolve=False)["dir"])


def pin_run_dir(argv: Sequence[str], conf_dir: Path, env: LaunchEnv | None = None) -> list[str]:
    """``argv`` with every rank's ``hydra.run.dir`` fixed to rank 0's clock (unchanged for a plain run).

    Non-zero ranks also get ``hydra.output_subdir=null``: rank 0 alone writes ``.hydra/``. A multirun
    under torchrun/srun would run every job on every rank with clocks of their own: refused.
    """
    global _pending_store
    env = env or launch_env()
    args = list(argv)
    if not env.active:
        return args
    if any(a in ("-m", "--multirun") for a in args[1:]):
        raise SystemExit("error: -m under torchrun/srun is not supported; for a sweep of data-parallel jobs use "
                         "+launcher=slurm_ddp, or hydra/launcher=submitit_local hydra.launcher.tasks_per_node=N")
    given = [a for a in args[1:] if a.startswith("hydra.run.dir=")]
    template = given[-1].split("=", 1)[1] if given else default_run_dir(conf_dir)
    if "${now:" in template:
        _pending_store = _rendezvous(env)
        store = _pending_store[0]
        if env.rank == 0:
            store.set(_STAMP_KEY, datetime.now().isoformat())
        stamp = datetime.fromisoformat(store.get(_STAMP_KEY).decode())
        template = re.sub(r"\$\{now:([^}]*)\}", lambda m: stamp.strftime(m.group(1)), template)
    args = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={template}"]
    if env.rank != 0:
        args.append("hydra.output_subdir=null")
    return args


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_rank(env: LaunchEnv, environ: Mapping[str, str] | None = None) -> int:
    """Torch threads for one rank: SLURM's ``cpus-per-task`` for SLURM tasks, else the usable cores split
    evenly over the ranks of this node."""
    environ = os.environ if environ is None else environ
    if env.source in ("srun", "submitit") and environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(environ["SLURM_CPUS_PER_TASK"]))
    return max(1, usable_cores() // env.local_world_size)


class Distributed:
    """This process's part in a data-parallel run; every method is a no-op for a single process."""

    def __init__(self, env: LaunchEnv | None = None, device: torch.device | None = None,
                 backend: str | None = None) -> None:
        self.env = env or LaunchEnv()
        self.device = device or torch.device("cpu")
        self.backend = backend
        # collectives move tensors through this device: NCCL needs them on the GPU
        self.comm_device = self.device if backend == "nccl" else torch.device("cpu")

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.env.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes metrics, checkpoints and logs."""
        return self.env.rank == 0

    def __repr__(self) -> str:
        return f"Distributed(rank {self.rank}/{self.world_size}, {self.backend or 'single process'}, {self.device})"

    # --- model and seeds ---------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (rank 0's weights broadcast, gradients averaged)."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def rank_seed(self, seed: int) -> int:
        """The seed of this rank: ``seed`` itself on rank 0, a distinct stream derived from it elsewhere."""
        if self.rank == 0:
            return int(seed)
        return int(np.random.SeedSequence([int(seed) % 2**63, self.rank]).generate_state(1, np.uint64)[0] >> 1)

    def local_batch(self, batch_size: int) -> int:
        """Per-rank batch size: ranks together take ``batch_size`` targets per optimiser step."""
        return max(1, math.ceil(int(batch_size) / self.world_size))

    # --- evaluation: shard targets, gather predictions ---------------------------------------
    def shard(self, nodes: torch.Tensor) -> torch.Tensor:
        """This rank's share of ``nodes`` (every ``world_size``-th, from ``rank``)."""
        return nodes if not self.active else nodes[self.rank :: self.world_size]

    def unshard(self, local: torch.Tensor, total: int) -> torch.Tensor:
        """The inverse of ``shard`` over all ranks: each rank's ``local`` values put back in the original
        order of the ``total`` sharded nodes (on every rank, on the CPU)."""
        if not self.active:
            return local
        width = math.ceil(total / self.world_size)
        padded = torch.full((width, *local.shape[1:]), -1, dtype=local.dtype, device=self.comm_device)
        padded[: local.shape[0]] = local.to(self.comm_device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        # rank r's i-th value belongs to position i * world_size + r
        return torch.stack(parts, 1).flatten(0, 1)[:total].cpu()

    # --- small reductions, once per epoch ----------------------------------------------------
    def sum(self, *values: float) -> list[float]:
        """Each value summed over ranks."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t)
        return t.tolist()

    def gather_object(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (on every rank)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def quiet_followers(self) -> None:
        """On ranks other than 0: no log file (rank 0 writes the run's log), warnings only on the console."""
        if self.is_main:
            return
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
        logging.getLogger("spikenet").setLevel(logging.WARNING)

    def close(self) -> None:
        """Leave the process group (after a last barrier, so no rank exits while others still talk)."""
        if self.active and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def setup(device: str = "auto", num_threads: int | None = None, env: LaunchEnv | None = None) -> Distributed:
    """Join the launch's process group (if there is one) and pick this rank's device and threads.

    ``device`` as in the config (``auto`` | ``cpu`` | ``cuda``): on CUDA each rank takes GPU
    ``local_rank`` and NCCL, on CPUs gloo; ``threads_per_rank`` torch threads either way (the sampler and
    the gather run on the CPU) unless ``num_threads`` is given (the trainer sets those itself).
    """
    global _pending_store
    env = env or launch_env()
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not env.active:
        return Distributed(env, torch.device("cuda" if use_cuda else "cpu"))
    if use_cuda:  # GPU local_rank; modulo the visible count, for clusters that show each task its own GPU only
        index = env.local_rank % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(index)
        dev, backend = torch.device("cuda", index), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not num_threads:  # torchrun sets OMP_NUM_THREADS=1; sampling and gathering want the node's cores
        torch.set_num_threads(threads_per_rank(env))
    _release_held_groups()  # an earlier run's group in this process: its workers are idle by now
    store, rank, world = _pending_store if _pending_store is not None else _rendezvous(env)
    _pending_store = None
    if (rank, world) != (env.rank, env.world_size):
        raise RuntimeError(f"rendezvous gave rank {rank}/{world}, the launcher said {env.rank}/{env.world_size}")
    dist.init_process_group(backend, store=dist.PrefixStore("default_pg", store), rank=rank, world_size=world,
                            timeout=TIMEOUT, device_id=dev if backend == "nccl" else None)
    _hold_group()
    if env.rank == 0:
        log.info("%d ranks via %s, %s; rank 0 on %s with %d torch threads", world, env.source, backend, dev,
                 torch.get_num_threads())
    return Distributed(env, dev, backend)
