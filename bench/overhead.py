"""How much does ``ft.fit`` cost over a hand-written loop, and what does the feature cache save?

Prints, measured in one run on this machine:
1. the ratio of ``ft.fit``'s time per training step to a plain PyTorch loop's, on the same
   model, data, batch size, optimizer and learning rate (target: <= 1.05);
2. the speed-up of the feature cache for a 5-epoch linear probe of a frozen backbone:
   the same ``ft.fit`` call with ``feature_cache=False``, with the cache computed in the call,
   and with the features kept from an earlier call on the same backbone and data (the case
   of every probe after the first: other seeds, learning rates, a lesson run again); target >= 10x.

Runs alternate (reference, ftkit, reference, ftkit, ...) and the medians are compared,
so a slow moment on the machine hits both sides alike.

    python bench/overhead.py            # about 3 minutes on a 2-core CPU
    python bench/overhead.py --quick    # fewer repeats
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import ftkit as ft  # noqa: E402


def hand_written(model: nn.Module, train, epochs: int, batch_size: int, lr: float, seed: int) -> tuple[float, int]:
    """The reference: the loop a PyTorch user writes, with the same optimizer and batches as fit.

    Returns the seconds spent in the epoch loops (set-up excluded, as in fit's History) and the steps.
    """
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    model.train()
    steps, seconds = 0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        seconds += time.perf_counter() - start
    return seconds, steps


def time_per_step(args) -> dict[str, float]:
    """Median seconds per step in the epoch loops, and for whole calls (set-up included)."""
    # A mid-sized CNN at 64x64: each step does real work, as in fine-tuning on a laptop.
    card_model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
    data = ft.load_dataset("digits", card_model, seed=0)
    train = data.train.subset(range(args.examples))
    times: dict[str, list[float]] = {k: [] for k in ("ref_step", "fit_step", "ref_call", "fit_call", "ref_cpu",
                                                     "fit_cpu")}
    for repeat in range(args.repeats):
        torch.manual_seed(0)
        model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
        start, cpu = time.perf_counter(), time.process_time()
        seconds, steps = hand_written(model, train, args.epochs, 32, 1e-3, seed=repeat)
        times["ref_cpu"].append((time.process_time() - cpu) / steps)
        times["ref_call"].append((time.perf_counter() - start) / steps)
        times["ref_step"].append(seconds / steps)

        torch.manual_seed(0)
        model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=64)
        start, cpu = time.perf_counter(), time.process_time()
        history = ft.fit(model, train, epochs=args.epochs, batch_size=32, lr=1e-3, schedule="constant",
                         seed=repeat, progress=False)
        steps = len(history.steps)
        times["fit_cpu"].append((time.process_time() - cpu) / steps)
        times["fit_call"].append((time.perf_counter() - start) / steps)
        times["fit_step"].append(sum(history.metric("time_s")) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def feature_cache_speedup(args) -> dict:
    """Seconds for the same 5-epoch linear probe: no cache, cache computed in the call, cache kept from a call before."""
    probe = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=args.probe_size)
    data = ft.load_dataset("digits", probe, seed=0)
    times = {"none": [], "cold": [], "warm": []}
    for _ in range(args.repeats):
        for kind in ("none", "cold", "warm"):
            if kind == "cold":
                ft.clear_feature_cache()  # features computed inside this call
            torch.manual_seed(0)
            model = ft.load_model("resnet18", num_classes=10, pretrained=False, image_size=args.probe_size)
            ft.freeze(model)
            start = time.perf_counter()
            history = ft.fit(model, data.train, data.val, epochs=5, lr=1e-3, batch_size=64,
                             feature_cache=kind != "none", progress=False)
            times[kind].append(time.perf_counter() - start)
            expected = {"none": None, "cold": "computed", "warm": "reused"}[kind]
            assert history.info.get("features", {}).get("train") == expected, history.info
    out = {k: statistics.median(v) for k, v in times.items()}
    out["sizes"] = f"train {len(data.train)} / val {len(data.val)} examples"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer examples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--examples", type=int, default=960)
    parser.add_argument("--probe-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-cache", action="store_true", help="only measure the time per step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.examples = 1, 320
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device: {ft.pick_device()}")

    t = time_per_step(args)
    print("\n1. time per step, resnet18 at 64x64 on digits, batch 32, AdamW (median of "
          f"{args.repeats} alternating runs)")
    print(f"   in the epoch loop:  hand-written {1000 * t['ref_step']:7.1f} ms/step, "
          f"ft.fit {1000 * t['fit_step']:7.1f} ms/step")
    print(f"   ratio ft.fit / hand-written = {t['fit_step'] / t['ref_step']:.3f}   (target <= 1.05)")
    print(f"   whole calls, set-up included: hand-written {1000 * t['ref_call']:7.1f} ms/step, "
          f"ft.fit {1000 * t['fit_call']:7.1f} ms/step, ratio {t['fit_call'] / t['ref_call']:.3f}")
    print(f"   CPU time of whole calls (robust when other processes share the machine): hand-written "
          f"{1000 * t['ref_cpu']:7.1f} ms/step, ft.fit {1000 * t['fit_cpu']:7.1f} ms/step, "
          f"ratio {t['fit_cpu'] / t['ref_cpu']:.3f}")

    if args.skip_cache:
        return
    t = feature_cache_speedup(args)
    print(f"\n2. 5-epoch linear probe of a frozen resnet18 at {args.probe_size}x{args.probe_size} on digits "
          f"({t['sizes']}, validation every epoch; median of {args.repeats})")
    print(f"   without the feature cache:                      {t['none']:6.2f} s")
    print(f"   cache computed in the call (first probe):       {t['cold']:6.2f} s   speed-up {t['none'] / t['cold']:5.1f}x")
    print(f"   cache kept from an earlier call (next probes):  {t['warm']:6.2f} s   speed-up {t['none'] / t['warm']:5.1f}x"
          "   (target >= 10x)")
    print("   A first call is bounded by about the number of epochs: without the cache each epoch runs the"
          " backbone once; with it the call runs it once.")

if __name__ == "__main__":
    main()
