"""How ftkit takes mistakes and interruptions: a table of bad inputs, and runs stopped at random moments.

    python bench/reliability.py [--trials 50] [--seed 0]

Part 1 runs every bad input of ``tests/test_checks.py`` (the same table the tests assert on) and
counts how each ended: a clear error (an ``ft.FtkitError`` of the expected kind whose message
names the problem), a crash (anything else: a deep torch error, no error at all), and data lost
(a file written by the case left half-written, or a model holding non-finite weights).

Part 2 interrupts checkpointed ``fit`` runs from another thread at random moments (set-up, a
step, validation, a checkpoint being written) and counts: the model at a completed epoch, every
checkpoint whole, and the resumed run bit-identical to an unbroken one.

Crashes and data lost must both be 0.
"""
from __future__ import annotations

import _thread
import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import torch  # noqa: E402

import ftkit as ft  # noqa: E402
import test_checks  # noqa: E402  (the table of bad inputs)
from helpers import blobs  # noqa: E402
from test_determinism import net  # noqa: E402


def bad_inputs() -> list[dict]:
    rows = []
    for name, (call, kind, words) in sorted(test_checks.CASES.items()):
        folder = Path(tempfile.mkdtemp(prefix="ftkit-reliability-"))
        test_checks._TMP.append(folder)
        outcome, detail = "crash", ""
        try:
            call()
            detail = "no error"
        except kind as err:
            clear = isinstance(err, ft.FtkitError) and words in str(err)
            outcome, detail = ("clear error", type(err).__name__) if clear else ("crash", f"unclear: {err}")
        except BaseException as err:  # noqa: BLE001 - this is what the bench counts
            detail = f"{type(err).__name__}: {err}"[:80]
        lost = bool(list(folder.rglob("*.tmp"))) or (folder / "PWNED").exists()
        rows.append({"case": name, "outcome": outcome, "data lost": lost, "detail": detail})
    return rows


def interruptions(trials: int, seed: int) -> dict:
    settings = dict(epochs=3, batch_size=16, lr=1e-2, seed=3, progress=False, live=False)
    states = []
    unbroken = net()
    snapshot = lambda m: {k: v.detach().clone() for k, v in m.state_dict().items()}
    ft.fit(net(), blobs(), blobs(seed=1), checkpoint_dir=Path(tempfile.mkdtemp(prefix="ftkit-warm-")), **settings)
    began = time.perf_counter()  # a warm run's time: first calls are slower
    ft.fit(unbroken, blobs(), blobs(seed=1), callbacks=[lambda e, h, m: states.append(snapshot(m))],
           checkpoint_dir=Path(tempfile.mkdtemp(prefix="ftkit-unbroken-")), **settings)
    duration = time.perf_counter() - began  # interrupts land from before the start to just after the end
    start = snapshot(net())
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in b)
    counts = {"trials": trials, "stopped mid-run": 0, "model at a completed epoch": 0, "checkpoints whole": 0,
              "resumed exactly": 0}
    rng = random.Random(seed)
    for trial in range(trials):
        folder = Path(tempfile.mkdtemp(prefix="ftkit-interrupt-"))
        model = net()
        timer = threading.Timer(rng.uniform(0.0, 1.2 * duration), _thread.interrupt_main)
        try:
            timer.start()
            history = ft.fit(model, blobs(), blobs(seed=1), checkpoint_dir=folder, **settings)
            timer.join()
            counts["stopped mid-run"] += history.interrupted
        except KeyboardInterrupt:
            timer.cancel()
        current = model.state_dict()
        counts["model at a completed epoch"] += any(same(current, s) for s in [start, *states])
        try:
            whole = not list(folder.glob(".*")) and all(ft.checkpoint_info(p) for p in folder.glob("*.safetensors"))
        except ft.CheckpointError:
            whole = False
        counts["checkpoints whole"] += whole
        resumed = net()
        ft.fit(resumed, blobs(), blobs(seed=1), checkpoint_dir=folder, **settings)
        counts["resumed exactly"] += same(resumed.state_dict(), unbroken.state_dict())
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="interrupted runs (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the interruption times")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    start = time.perf_counter()
    rows = bad_inputs()
    width = max(len(r["case"]) for r in rows)
    print(f"{'bad input':<{width}}  outcome      data lost  detail")
    for r in rows:
        print(f"{r['case']:<{width}}  {r['outcome']:<11}  {'YES' if r['data lost'] else 'no':<9}  {r['detail']}")
    clear = sum(r["outcome"] == "clear error" for r in rows)
    crashes = sum(r["outcome"] == "crash" for r in rows)
    lost = sum(r["data lost"] for r in rows)
    print(f"\ncases tried {len(rows)}, clear errors {clear}, crashes {crashes}, data lost {lost}")
    counts = interruptions(args.trials, args.seed)
    print("\ninterruption trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    failed = counts["trials"] - min(counts["model at a completed epoch"], counts["checkpoints whole"],
                                    counts["resumed exactly"])
    print(f"runs that lost something: {failed}   ({time.perf_counter() - start:.0f} s)")
    return 0 if crashes == 0 and lost == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
