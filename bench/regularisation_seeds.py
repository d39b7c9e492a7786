"""Does lesson 05's claim hold for other seeds? The lesson's comparison, rerun with the seeds given.

Lesson 05 compares regularisers over seeds 0-4 and asserts that at least two of them
shrink the mean generalisation gap by >= 2 points and raise mean test accuracy. This runs
the same comparison (same task, model and recipe) for any seeds and prints, per recipe,
the gap change against the baseline for each seed and on average, and the test accuracy.

    python bench/regularisation_seeds.py                  # seeds 5 6 7 8 9
    python bench/regularisation_seeds.py 0 1 2 3 4        # the lesson's own seeds

Results go to ftkit's result cache, so a second run is instant (FTKIT_HOME to keep it apart).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import ftkit as ft
from ftkit.experiments.strategies import L2SPFactory

# Lesson 05's task and recipe (keep in step with lessons/05_regularisation.ipynb).
TASK = dict(chars="0123456789", per_class=150, rotation=20, shift=0.12, scale=(0.5, 0.9), noise=0.05)
RECIPE = dict(lr=3e-3, epochs=20, schedule="constant")


def strategies() -> list[ft.Strategy]:
    no_decay = {"weight_decay": 0.0}
    return [
        ft.Strategy("baseline", train=no_decay, **RECIPE),
        ft.Strategy("dropout 0.5", dropout=0.5, train=no_decay, **RECIPE),
        ft.Strategy("weight decay 1", train={"weight_decay": 1.0}, **RECIPE),
        ft.Strategy("L2-SP alpha 10", regularizers=(L2SPFactory(alpha=10.0),), train=no_decay, **RECIPE),
        ft.Strategy("augmentation (light)", augment="light", train=no_decay, **RECIPE),
        ft.Strategy("early stopping (patience 3)", train={"weight_decay": 0.0, "patience": 3}, **RECIPE),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", type=int, default=[5, 6, 7, 8, 9])
    args = parser.parse_args(argv)
    data = ft.load_dataset("glyphs", "glyph-resnet", seed=0, **TASK)
    data = dataclasses.replace(data, val=ft.few_shot(data.val, per_class=5, seed=0))  # as the lesson: 50 images
    result = ft.compare(strategies(), model="glyph-resnet", data=data, per_class=5, seeds=args.seeds, gap=True,
                        batch_size=10, optimizer="adamw", progress=False)
    runs = {}
    for run in result.runs:
        runs.setdefault(run["strategy"], []).append(run)
    base = runs["baseline"]
    print(f"seeds {args.seeds}; gap change against the baseline in points (positive: smaller gap)")
    print(f"{'recipe':28s} {'per seed':>{7 * len(args.seeds)}s} {'mean':>6s} {'test acc':>9s}")
    helped = []
    for row in result.rows:
        name = row["strategy"]
        change = [100 * (b["gap"] - r["gap"]) for b, r in zip(base, runs[name])]
        mean = sum(change) / len(change)
        if name != "baseline" and mean >= 2 and row["accuracy"] > result.rows[0]["accuracy"]:
            helped.append(name)
        print(f"{name:28s} " + "".join(f"{c:+7.1f}" for c in change) + f" {mean:+6.1f} {100 * row['accuracy']:8.1f}%")
    print(f"lesson 05's claim (>= 2 recipes shrink the mean gap by >= 2 points and raise test accuracy): "
          f"{'holds' if len(helped) >= 2 else 'FAILS'} ({', '.join(helped) or 'none'})")
    return 0 if len(helped) >= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
