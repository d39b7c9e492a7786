"""Do the zoo's recipes reproduce the shipped models? Re-run each one and compare metrics with its card.

For each zoo model this runs its recipe (``ftkit pretrain NAME``) with the seed and
settings recorded in the shipped card, into a temporary folder, and compares every
metric with the card's: accuracies within 1 point (0.01), perplexities within 1%.
Prints a table and exits with status 1 if any metric is off.

    python bench/zoo_reproduce.py                      # all models, about 15 minutes on a 2-core CPU
    python bench/zoo_reproduce.py glyph-resnet         # one model
    python bench/zoo_reproduce.py --keep /tmp/zoo      # keep the re-made weights and cards there

Not part of the default test run: it trains every model from scratch.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ftkit import zoo
from ftkit.zoo import recipes


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{"a": {"b": 1}} -> {"a.b": 1}; only numbers are kept."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def within(name: str, shipped: float, again: float) -> tuple[bool, str]:
    """Accuracies (fractions) within 1 point; perplexities within 1%; settings (steps, lr) exactly."""
    if "perplexity" in name:
        return abs(again - shipped) <= 0.01 * shipped, "1%"
    if name.endswith(("steps", "lr", "batch_size")):
        return again == shipped, "equal"
    return abs(again - shipped) <= 0.01, "1 point"


def reproduce(name: str, out_dir: str) -> list[dict]:
    shipped = zoo.zoo_info(name)
    fields = {f.name for f in dataclasses.fields(recipes.recipe_for(name))}
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in shipped["training"].items() if k in fields}
    start = time.perf_counter()
    again = recipes.pretrain(name, out_dir, log=lambda line: print("   ", line), **settings)
    print(f"  {name}: re-made in {time.perf_counter() - start:.0f} s (shipped card: "
          f"{shipped['wall_time_s']['total']:.0f} s on {shipped['threads']} threads)")
    rows = []
    new = flatten(again["metrics"])
    for metric, value in flatten(shipped["metrics"]).items():
        ok, tolerance = within(metric, value, new.get(metric, float("nan")))
        rows.append({"model": name, "metric": metric, "shipped": value, "re-made": new.get(metric),
                     "tolerance": tolerance, "ok": ok})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(zoo.ZOO_NAMES), help="zoo models (default: all)")
    parser.add_argument("--keep", default=None, help="write the re-made models here instead of a temporary folder")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            print(f"re-running the recipe of {name} ...", flush=True)
            rows += reproduce(name, args.keep or tmp)
    width = max(len(r["model"]) + len(r["metric"]) for r in rows) + 3
    print(f"\n{'metric':<{width}} {'shipped':>10} {'re-made':>10}  tolerance  ok")
    for r in rows:
        again = "missing" if r["re-made"] is None else f"{r['re-made']:.4f}"
        print(f"{r['model'] + ': ' + r['metric']:<{width}} {r['shipped']:>10.4f} {again:>10}  {r['tolerance']:<9}  "
              f"{'yes' if r['ok'] else 'NO'}")
    bad = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} metrics reproduced" + (": FAILED" if bad else "."))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
