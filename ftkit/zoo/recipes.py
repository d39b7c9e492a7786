"""Recipes that pre-train the zoo's models: ``ftkit pretrain NAME`` runs one.

Each recipe is one function with a plain training loop that reads top to bottom. It is
deterministic for a seed: the data is rendered or read the same way every time, and
``torch.manual_seed`` fixes the initial weights, the batches and the jitter (a CPU run
repeats bit for bit with the same number of threads). It writes the weights
(safetensors) and a JSON card next to them, each by an atomic rename, so a crash never
leaves half a file: the data recipe, classes, steps, seed, metrics, wall time, versions.

    ftkit pretrain glyph-resnet          # about 1.5 minutes on a 2-core CPU
    ftkit pretrain glyph-vit             # about 4 minutes
    ftkit pretrain bbc-gpt               # about 12 minutes (the recipe is in gpt.py)
    ftkit pretrain glyph-resnet --out /tmp/zoo --quick    # a smoke test in seconds

Example:
    >>> from ftkit.zoo.recipes import pretrain  # doctest: +SKIP
    >>> card = pretrain("glyph-resnet", out_dir="/tmp/zoo", quick=True)  # doctest: +SKIP
    >>> card["metrics"]  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import pick_device, use_all_cores
from ..core.errors import UnknownNameError
from ..core.io import atomic_write
from ..data.transforms import image_transform
from ..data.zoo_tasks import GLYPH_CHARS, GLYPH_KNOBS, render_source
from ..models.catalogue import get_card
from ..models.zoo import ZOO_DIR, build, weights_path
from ._common import Stopwatch, decay_groups, plain, write_card
from .gpt import GPTRecipe, pretrain_gpt
from .transfer import FewShotRecipe, transfer_scores, zero_shot_digits


@dataclass(frozen=True)
class GlyphRecipe:
    """Pre-training of a glyph backbone on the 82 rendered classes (``tasks.render_source``)."""

    arch: str = "GlyphResNet"  # or "GlyphViT"
    per_class: int = 300  # training images per class (82 classes)
    val_per_class: int = 20  # validation images per class, rendered with another seed
    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3  # peak of the one-cycle schedule (Smith 2018)
    weight_decay: float = 0.05  # AdamW; not on biases and normalisation weights
    label_smoothing: float = 0.1  # softer targets: 'O', 'o' and '0' look alike at 8x8 (Szegedy et al. 2016)
    jitter: bool = True  # random rotation, shear, scale and shift of every image, every epoch
    seed: int = 0  # weights, batches, jitter; the training images are rendered with this seed too
    transfer_ks: tuple[int, ...] = (1, 2, 5, 10)  # the card's few-shot table on real digits
    transfer_seeds: tuple[int, ...] = (0, 1, 2)


QUICK = {
    "glyph-resnet": {"per_class": 3, "val_per_class": 2, "epochs": 1, "transfer_ks": (1,), "transfer_seeds": (0,)},
    "glyph-vit": {"per_class": 3, "val_per_class": 2, "epochs": 1, "transfer_ks": (1,), "transfer_seeds": (0,)},
    "bbc-gpt": {"vocab_size": 300, "block_size": 32, "epochs": 1, "max_articles": 20, "finetune_steps": 2,
                "eval_blocks": 16},
}


# --- vision -------------------------------------------------------------------------------------


def jitter(x: torch.Tensor, generator: torch.Generator, degrees: float = 10.0, shear: float = 0.15,
           scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.1) -> torch.Tensor:
    """A random affine transform per image (a batch ``[N, C, H, W]``), in one ``grid_sample`` call."""
    n = len(x)
    u = torch.rand(n, 5, generator=generator).to(x.device) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)
    size = scale[0] + (u[:, 1] + 1) / 2 * (scale[1] - scale[0])
    cos, sin = torch.cos(angle) / size, torch.sin(angle) / size
    theta = torch.stack([torch.stack([cos, -sin + u[:, 2] * shear, u[:, 3] * 2 * shift], 1),
                         torch.stack([sin, cos, u[:, 4] * 2 * shift], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def _images(card, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W]`` -> what the model card says the network sees (the same transform as ft.load_dataset)."""
    return image_transform(card)(images[:, None].float() / 255)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def pretrain_glyphs(name: str, recipe: GlyphRecipe, out_dir: Path, device: str | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Pre-train a glyph backbone on the 82 rendered classes; evaluate it; write weights and card."""
    clock = Stopwatch()
    dev = pick_device(device)
    use_all_cores(dev)
    card = get_card(name)
    x_train, y_train = render_source(recipe.per_class, recipe.seed)
    x_val, y_val = render_source(recipe.val_per_class, recipe.seed + 5000)  # other images of the same classes
    x_train, x_val = _images(card, x_train).to(dev), _images(card, x_val).to(dev)
    y_train, y_val = y_train.to(dev), y_val.to(dev)
    times = {"render_s": clock.wall()}
    log(f"{name}: {len(x_train):,} training images of {len(GLYPH_CHARS)} classes, rendered in {times['render_s']:.0f} s")

    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)  # batches and jitter
    model = build(recipe.arch).to(dev)
    optimizer = torch.optim.AdamW(decay_groups(model, recipe.weight_decay), lr=recipe.lr)
    steps_per_epoch = math.ceil(len(x_train) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
                                                    pct_start=0.15)
    history = []
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(dev)
        total = 0.0
        for i in range(0, len(x_train), recipe.batch_size):
            batch = order[i:i + recipe.batch_size]
            x = jitter(x_train[batch], generator) if recipe.jitter else x_train[batch]
            loss = F.cross_entropy(model(x), y_train[batch], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(batch)
        val = _accuracy(model, x_val, y_val)
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(x_train), 4), "val_accuracy": round(val, 4)})
        log(f"  epoch {epoch + 1}/{recipe.epochs}: loss {total / len(x_train):.3f}, "
            f"source val accuracy {val:.3f} ({clock.wall():.0f} s)")
    times["train_s"] = clock.wall() - times["render_s"]
    model = model.cpu().eval()

    # What the card reports: the source task, zero-shot real digits, few-shot transfer.
    model.ftkit_card = card
    metrics = {"source_val_accuracy": round(history[-1]["val_accuracy"], 4),
               "zero_shot_digits": round(zero_shot_digits(model), 4)}
    scores = transfer_scores(model, recipe.transfer_ks, recipe.transfer_seeds, FewShotRecipe())
    metrics["digits_transfer"] = {str(k): {s: round(v, 4) for s, v in row.items()} for k, row in scores.items()}
    times["evaluate_s"] = clock.wall() - times["render_s"] - times["train_s"]
    log(f"  zero-shot real digits {metrics['zero_shot_digits']:.3f}; transfer {metrics['digits_transfer']}")

    record = {
        "name": name, "arch": recipe.arch, "params": sum(p.numel() for p in model.parameters()),
        "task": "image-classification", "seed": recipe.seed, "classes": list(GLYPH_CHARS),
        "data": {"recipe": "ftkit.data.zoo_tasks.render_source", "chars": GLYPH_CHARS, "knobs": plain(GLYPH_KNOBS),
                 "per_class": recipe.per_class, "render_seed": recipe.seed, "train_images": len(x_train),
                 "val_per_class": recipe.val_per_class, "val_render_seed": recipe.seed + 5000,
                 "includes_digits": True,
                 "note": "the ten digit characters are source classes: fine-tuning on real digits is sim-to-real"},
        "training": {**plain(dataclasses.asdict(recipe)), "steps": recipe.epochs * steps_per_epoch,
                     "optimizer": "AdamW", "schedule": "one-cycle", "history": history},
        "metrics": metrics,
        "transfer_protocol": plain(dataclasses.asdict(FewShotRecipe())),
    }
    return _save_vision(name, model, record, times, clock, out_dir, dev)


def _save_vision(name, model, record, times, clock, out_dir: Path, dev) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    target = weights_path(name, out_dir)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(target, lambda tmp: save_file(state, str(tmp), metadata={"name": name, "format": "pt"}), mode=0o644)
    return write_card(name, record, times, clock, out_dir, dev, [target])


# --- the command ----------------------------------------------------------------------------------


RECIPES: dict[str, tuple[type, Callable, dict]] = {
    "glyph-resnet": (GlyphRecipe, pretrain_glyphs, {}),
    "glyph-vit": (GlyphRecipe, pretrain_glyphs, {"arch": "GlyphViT", "epochs": 10, "lr": 2e-3}),
    "bbc-gpt": (GPTRecipe, pretrain_gpt, {}),
}


def recipe_for(name: str, quick: bool = False, **overrides):
    """The recipe (a frozen dataclass) that makes zoo model ``name``; ``quick``: a tiny smoke-test version."""
    if name not in RECIPES:
        raise UnknownNameError(f"No recipe for {name!r}; the zoo's recipes: {', '.join(RECIPES)}.")
    cls, _, defaults = RECIPES[name]
    return cls(**{**defaults, **(QUICK[name] if quick else {}), **overrides})


def pretrain(name: str, out_dir: str | os.PathLike | None = None, *, quick: bool = False, device: str | None = None,
             log: Callable[[str], None] = print, **overrides) -> dict:
    """Run the recipe of zoo model ``name``; write ``<name>.safetensors`` (or ``<name>/``) and ``<name>.json``.

    Args:
        out_dir: where to write; default: the package's zoo folder (replacing the shipped model).
        quick: a tiny configuration (a few images or articles, one epoch) to check the recipe runs.
        overrides: recipe fields, e.g. ``epochs=2``, ``seed=1``.

    Returns the card written (a dict).
    """
    recipe = recipe_for(name, quick, **overrides)
    run = RECIPES[name][1]
    return run(name, recipe, Path(out_dir) if out_dir is not None else ZOO_DIR, device, log)
