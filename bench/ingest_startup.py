"""Start-up costs of the ingest command: what a user pays before the first frame is decoded.

    .venv/bin/python bench/ingest_startup.py [--reps 5]

Per repetition, each in a fresh process:
  help      `cwm-ingest --help` (console script), wall seconds
  worker    `python -c "import cwm.ingest.writer, cwm.ingest.probe"`: the imports a dask worker
            pays on its first task, wall seconds
  cluster   an embedded LocalCluster(n_workers=1, processes=True) up, a client connected and
            the worker's first task (those imports) done, wall seconds from the process's start
            of `LocalCluster(...)`
  torch     whether torch ended up imported in the client and in the worker (must be False)
Medians printed; the peer is the same figures from the parent commit (run it there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

_CLUSTER = r"""
import json, logging, sys, time
t0 = time.perf_counter()
import dask
from distributed import Client, LocalCluster
import cwm.cli.ingest  # the client side of the command
t1 = time.perf_counter()
def first_task():
    import sys, cwm.ingest.writer
    try:
        import cwm.ingest.probe
    except ImportError:
        pass
    return "torch" in sys.modules
with dask.config.set({"distributed.worker.profile.enabled": False}):
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
client = Client(cluster)
t2 = time.perf_counter()
worker_torch = client.submit(first_task, pure=False).result()
t3 = time.perf_counter()
client.close(); cluster.close()
print(json.dumps({"client_import": t1 - t0, "cluster_up": t2 - t1, "first_task": t3 - t2,
                  "cluster": t3 - t1, "client_torch": "torch" in sys.modules,
                  "worker_torch": worker_torch}))
"""


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("cwm-ingest") or sys.exit("cwm-ingest not on PATH")
    rows = {"help": [], "worker": [], "client_import": [], "cluster_up": [], "first_task": [],
            "cluster": []}
    torch_seen = set()
    for _ in range(args.reps):
        rows["help"].append(wall([exe, "--help"]))
        rows["worker"].append(wall([sys.executable, "-c",
                                    "import cwm.ingest.writer\ntry:\n import cwm.ingest.probe\n"
                                    "except ImportError:\n pass"]))
        out = subprocess.run([sys.executable, "-c", _CLUSTER], check=True, capture_output=True,
                             text=True, env=dict(os.environ)).stdout
        r = json.loads(out.strip().splitlines()[-1])
        for k in ("client_import", "cluster_up", "first_task", "cluster"):
            rows[k].append(r[k])
        torch_seen.add((r["client_torch"], r["worker_torch"]))
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for k, v in rows.items():
        print(f"{k:14s} median {statistics.median(v):6.2f} s   ({', '.join(f'{x:.2f}' for x in v)})")
    print("torch imported (client, worker):", sorted(torch_seen))


if __name__ == "__main__":
    main()
