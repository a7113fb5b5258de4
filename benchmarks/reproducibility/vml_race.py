"""How often a fresh process computes a float32 sqrt with other bits, with and without ``settle_vector_math``.

    python benchmarks/reproducibility/vml_race.py --processes 120 --threads 2

Each probe is a fresh Python process: it sets the torch threads, optionally calls
``spikenet.runtime.settle_vector_math()``, takes the sqrt of one fixed [128, 32] input (two chunks of
2048 elements, so ATen hands them to two threads) and prints the result's bytes as hex. Per mode it prints
how many processes gave the most common result, how many gave another, and which elements differed. A
difference means the process's VML kernels depend on how it first used them (see ``settle_vector_math``).
It is a measurement, not a test: the race is rare (2 to 5 processes in 120 here), so a count needs many
processes, and it shows more on a loaded machine than on an idle one. Last line: one JSON object. The
count is ``spikenet.benchmarking.tally``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from spikenet.benchmarking import tally

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import torch
torch.set_num_threads({threads})
if {settle}:
    from spikenet.runtime import settle_vector_math
    settle_vector_math()
x = torch.rand(128, 32, generator=torch.Generator().manual_seed(0)) * 1e-6
sys.stdout.write(torch.sqrt(x).numpy().tobytes().hex())
"""


def probe(threads: int, settle: bool) -> bytes:
    """The sqrt bytes one fresh process computes."""
    code = PROBE.format(threads=threads, settle=settle)
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": path})
    return bytes.fromhex(out.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=120, help="fresh processes per mode (default 120)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each process (default 2)")
    args = parser.parse_args(argv)
    summary = {}
    for mode, settle in (("plain", False), ("settled", True)):
        summary[mode] = tally([probe(args.threads, settle) for _ in range(args.processes)])
        s = summary[mode]
        where = (f"; elements {s['changed_elements'][0]}-{s['changed_elements'][1]} "
                 f"({s['changed_elements'][2]} changed)" if s["changed_elements"] else "")
        print(f"{mode:8s} {s['differ']} of {s['processes']} processes differ from the most common sqrt{where}",
              flush=True)
    print(json.dumps({"threads": args.threads, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
