"""What the lessons share: a first-cell report, the offline/online scenarios, and device-sized settings.

Every lesson starts with ``ft.start_lesson("03")``: it seeds everything, says where the
notebook runs (Colab, Binder, local) and on what device, and returns that as a dict. The
lessons' experiments read their model and data from a ``Scenario``: the offline one (the
default: shipped models and data, nothing downloaded) or the online one (ImageNet and Hugging
Face models on real datasets), and size themselves with ``by_device``.

Example:
    >>> info = ft.start_lesson("02")  # doctest: +SKIP
    >>> sc = ft.scenario("vision")                 # glyph-resnet on real handwritten digits
    >>> sc = ft.scenario("vision", online=True)    # ImageNet ResNet-18 on Flowers102 (downloads)
    >>> epochs = ft.by_device(cpu=5, gpu=20)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..core import __version__
from ..core.device import seed_everything
from .doctor import device_info, where


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A model and a dataset a lesson's experiment runs on."""

    kind: str  # "vision", "text" or "generative"
    model: str  # a catalogue name for ft.load_model
    dataset: str  # a catalogue name for ft.load_dataset ("bbc-lm" for the tiny GPT's target domain)
    online: bool  # needs a download the first time
    about: str  # one line for the learner
    options: dict = dataclasses.field(default_factory=dict)  # extra keyword options for ft.load_dataset


SCENARIOS: dict[tuple[str, bool], Scenario] = {
    ("vision", False): Scenario("vision", "glyph-resnet", "digits", False,
                                "ftkit's small ResNet, pre-trained on rendered characters, on real handwritten digits"),
    ("vision", True): Scenario("vision", "resnet18", "flowers102", True,
                               "ResNet-18 pre-trained on ImageNet, on 102 kinds of flowers (Flowers102)"),
    ("text", False): Scenario("text", "minilm-l6", "bbc-news", False,
                              "MiniLM (all-MiniLM-L6-v2, a small BERT), on BBC News articles in 5 topics"),
    ("text", True): Scenario("text", "distilbert-base-uncased", "sst2", True,
                             "DistilBERT from the Hugging Face hub, on movie-review sentiment (SST-2)"),
    ("generative", False): Scenario("generative", "bbc-gpt", "bbc-lm", False,
                                    "ftkit's tiny GPT, pre-trained on business/politics/tech news, on sport news",
                                    {"topics": ("sports",)}),
    ("generative", True): Scenario("generative", "distilgpt2", "bbc-lm", True,
                                   "DistilGPT-2 from the Hugging Face hub, on BBC sport news", {"topics": ("sports",)}),
}


def scenario(kind: str, online: bool = False) -> Scenario:
    """The offline (default) or online scenario for a kind of model: ``"vision"``, ``"text"``, ``"generative"``.

    Example:
        >>> ft.scenario("text")
        Scenario(kind='text', model='minilm-l6', dataset='bbc-news', ...)
    """
    kinds = sorted({k for k, _ in SCENARIOS})
    if kind not in kinds:
        raise ValueError(f"Unknown scenario kind {kind!r}: use one of {', '.join(kinds)}.")
    return SCENARIOS[(kind, bool(online))]


def on_gpu() -> bool:
    """Is a CUDA GPU available (where the lessons run bigger settings)?"""
    return torch.cuda.is_available()


def by_device(cpu: Any, gpu: Any) -> Any:
    """``gpu`` when a CUDA GPU is available, else ``cpu``: one cell, sized for where it runs.

    Example:
        >>> k_values = ft.by_device(cpu=[1, 2, 4, 8], gpu=[1, 2, 4, 8, 16, 32])
    """
    return gpu if on_gpu() else cpu


def start_lesson(lesson: str = "", seed: int = 0, verbose: bool = True) -> dict:
    """A lesson's first call: seed everything and report where it runs and on what device.

    Example:
        >>> info = ft.start_lesson("00")  # doctest: +SKIP
        ftkit 0.1.0 | lesson 00 | local | CPU, 2 cores | seed 0
    """
    seed_everything(seed)
    dev = device_info()
    if dev["name"] == "cuda":
        device = f"GPU {dev['gpu']}, {dev['memory_gb']:.0f} GB, {dev['precision']}"
    elif dev["name"] == "mps":
        device = dev["gpu"]
    else:
        device = f"CPU, {dev['cores']} cores"
    info = {"ftkit": __version__, "lesson": lesson, "where": where(), "device": device, "gpu": on_gpu(), "seed": seed}
    if verbose:
        print(f"ftkit {__version__} | lesson {lesson or '-'} | {info['where']} | {device} | seed {seed}")
        if not info["gpu"]:
            print("No GPU: the lesson runs its small CPU settings (a GPU runs bigger ones by itself).")
    return info


__all__ = ["SCENARIOS", "Scenario", "by_device", "on_gpu", "scenario", "start_lesson"]
