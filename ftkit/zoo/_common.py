"""What the zoo's recipes share: weight-decay groups, and writing weights and cards atomically."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..core import __version__
from ..core.io import atomic_write
from ..models.zoo import card_path


class Stopwatch:
    """Wall-clock seconds and CPU seconds (this process, all threads) since it was made."""

    def __init__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and kernels only: not on biases, norms, a ViT's class token and positions."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and not n.endswith(("cls_token", "pos_embed"))]
    ids = {id(p) for p in decay}
    no_decay = [p for _, p in named if id(p) not in ids]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def plain(value):
    """Tuples -> lists, for JSON."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(name, record, times, clock: "Stopwatch", out_dir: Path, dev, files: list[Path]) -> dict:
    times["total_s"] = clock.wall()
    record.update({
        "wall_time_s": {k.removesuffix("_s"): round(v, 1) for k, v in times.items()},
        # CPU seconds of this process (all threads): unlike wall time, not inflated by other programs running.
        "cpu_time_s": round(clock.cpu(), 1),
        "command": f"ftkit pretrain {name}",
        "device": str(dev), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "versions": {"torch": torch.__version__, "ftkit": __version__, "python": platform.python_version()},
        "files": {str(p.relative_to(out_dir)): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(card_path(name, out_dir), lambda tmp: tmp.write_text(text), mode=0o644)
    return record


def atomic_write_dir(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder next to ``target``, then swap it in with renames (the old one is removed last)."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    old = target.parent / f".{target.name}.old"
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        for path in tmp.iterdir():
            os.chmod(path, 0o644)
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
