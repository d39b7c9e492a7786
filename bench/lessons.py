"""Time each lesson end to end and measure its kernel's peak memory: the lessons' budgets.

Runs every notebook (or the ones named) top to bottom in a fresh kernel, the way nbval
does, while a thread samples the kernel process's resident memory (with its children).
Prints a table: lesson, seconds, peak MB, and whether it is within budget
(each lesson <= 90 s and its kernel <= 1,536 MB on a quiet 2-core machine, lessons 00-05 and 06-11 each
<= 6 minutes together, so that Binder's slower shared CPUs, 1.5-3x slower, stay within 3 minutes and 2 GB a lesson).

    python bench/lessons.py                       # all lessons
    python bench/lessons.py 00 03                 # lessons whose name starts with 00 or 03
    python bench/lessons.py --threads 1           # as on a 1-core Binder
    python bench/lessons.py --warm                # keep ftkit's result cache (a second run of a lesson)

By default the kernels get an empty ftkit cache (FTKIT_HOME in a temporary folder), so
the times are those of a learner's first run, with no comparison results cached.

Exit status 1 if a lesson fails or breaks a budget.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
BUDGET_S, BUDGET_MB, BUDGET_HALF_S = 90, 1536, 6 * 60
HALVES = {"00-05": ("00", "05"), "06-11": ("06", "11")}  # the course's two halves, each within BUDGET_HALF_S


def _rss_mb(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def run(path: Path, timeout: int) -> tuple[float, float, str]:
    """(seconds, peak MB, error or "") for one notebook."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(LESSONS)}})
    peak, stop = [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            km = client.km
            pid = getattr(getattr(getattr(km, "provisioner", None), "process", None), "pid", None) if km else None
            if pid:
                peak[0] = max(peak[0], _rss_mb(pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    error = ""
    try:
        client.execute()
    except Exception as exc:  # a failing cell: report it, keep timing the others
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"[:200]
    finally:
        stop.set()
        sampler.join()
    return time.perf_counter() - start, peak[0], error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="name prefixes, e.g. 00 03 (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell before giving up")
    parser.add_argument("--warm", action="store_true", help="keep ftkit's cache (FTKIT_HOME) instead of an empty one")
    args = parser.parse_args(argv)
    if not args.warm:
        cold = tempfile.TemporaryDirectory(prefix="ftkit-bench-")
        os.environ["FTKIT_HOME"] = cold.name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    paths = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name.startswith(tuple(args.lessons))]
    if not paths:
        print("no lessons matched", args.lessons)
        return 1
    print(f"{'lesson':<36} {'seconds':>8} {'peak MB':>8}  within budget")
    ok, halves = True, {}
    for path in paths:
        seconds, mb, error = run(path, args.timeout)
        good = not error and seconds <= BUDGET_S and mb <= BUDGET_MB
        ok &= good
        for half, (first, last) in HALVES.items():
            if first <= path.name[:2] <= last:
                halves[half] = halves.get(half, 0.0) + seconds
        verdict = "yes" if good else ("FAILED " + error if error else "NO")
        print(f"{path.stem:<36} {seconds:>8.1f} {mb:>8.0f}  {verdict}", flush=True)
    for half, total in halves.items():
        good = total <= BUDGET_HALF_S
        ok &= good
        label = f"lessons {half} together"
        print(f"{label:<36} {total:>8.1f} {'':>8}  {'yes' if good else 'NO'} (budget {BUDGET_HALF_S} s)")
    print(f"budgets: {BUDGET_S} s and {BUDGET_MB} MB per lesson; CPU threads: "
          f"{os.environ.get('OMP_NUM_THREADS', 'all')}; ftkit cache: {'kept' if args.warm else 'empty'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
