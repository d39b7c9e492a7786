"""Datasets for fine-tuning: labelled datasets, train/val/test splits, ``few_shot``.

A ``LabeledDataset`` is a plain ``torch.utils.data.Dataset`` that also knows its
``targets``, ``classes`` and ``task``; an image dataset carries the transform derived
from a model card, a text dataset its tokenization and a ``collate_fn`` that pads.
``Splits`` holds train / val / test, stratified and the same for the same seed.
The catalogue of named datasets (``load_dataset``) is in ``ftkit.data.catalogue``; your own
files (``from_folder``, ``from_csv``) in ``ftkit.data.files``.

Example:
    >>> data = ft.load_dataset("bbc-news", "minilm-l6")      # tokenized for MiniLM
    >>> train, val, test = data
    >>> few = ft.few_shot(train, per_class=8, seed=0)
    >>> loader = torch.utils.data.DataLoader(few, batch_size=8, shuffle=True, collate_fn=few.collate_fn)
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import html
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..core.errors import DataError
from ..models.cards import ModelCard
from ..models.catalogue import get_card, load_tokenizer, resolve_card
from .transforms import ImageTransform, PadCollate, image_transform, to_float_image, tokenize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
OFFLINE = ("bbc-news", "digits", "glyphs")


# --- datasets ------------------------------------------------------------------------------


class LabeledDataset(Dataset):
    """A dataset of (input, label) pairs that knows its classes, its task and its raw inputs.

    Attributes:
        inputs: the raw inputs (a uint8 tensor of images, a list of image paths, a list of texts).
        targets: one label per item: class indices (int), or numbers (float) for regression.
        classes: class names (empty for regression).
        task: "image-classification", "text-classification" or "regression".
        name: where the data came from, e.g. "digits".
        indices: position of each item in the full (unsplit) dataset.
        collate_fn: pass to ``DataLoader(collate_fn=...)``; None means PyTorch's default.
    """

    collate_fn: Callable | None = None
    augment = "none"  # texts and raw inputs are never randomly augmented

    def __init__(self, inputs, targets: Sequence, classes: Sequence[str], task: str, name: str):
        if len(inputs) != len(targets):
            raise DataError(f"{len(inputs)} inputs but {len(targets)} labels.")
        self.inputs, self.targets, self.classes = inputs, list(targets), list(classes)
        self.task, self.name = task, name
        self.indices = list(range(len(targets)))

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: Sequence[int]) -> "LabeledDataset":
        """The items at ``indices``, as a dataset of the same kind (same transform, tokenization)."""
        indices = [int(i) for i in indices]
        new = copy.copy(self)
        new.inputs = self.inputs[torch.as_tensor(indices, dtype=torch.long)] if isinstance(
            self.inputs, torch.Tensor) else [self.inputs[i] for i in indices]
        new.targets = [self.targets[i] for i in indices]
        new.indices = [self.indices[i] for i in indices]
        return new

    def fingerprint(self) -> str | None:
        """A hash of what this dataset yields (inputs, targets, their preparation); None if unknowable.

        ``fit``'s feature cache keys a frozen backbone's features on it, so that a second
        linear probe on the same data (another seed, another head LR) skips the backbone.
        It is computed afresh each call (hashing is far cheaper than a backbone pass), so a
        dataset changed in place gets a new fingerprint.
        """
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{type(self).__qualname__}|{self.task}|{len(self)}".encode())
        h.update(np.asarray(self.targets, dtype=np.float64).tobytes())
        prepared = self._prepared_parts()
        if prepared is None:
            return None
        h.update(prepared.encode())
        if isinstance(self.inputs, torch.Tensor):
            h.update(str((self.inputs.dtype, tuple(self.inputs.shape))).encode())
            h.update(self.inputs.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        else:
            for x in self.inputs:
                if not isinstance(x, (str, os.PathLike)):
                    return None
                h.update(os.fsencode(x) + b"\0")
                if os.path.isfile(x):  # a file on disk: edited files get a new fingerprint
                    st = os.stat(x)
                    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()

    def _prepared_parts(self) -> str | None:
        """How items are prepared from the inputs, as text for the fingerprint (None: unknown)."""
        return ""

    def __repr__(self) -> str:
        classes = f"{self.num_classes} classes" if self.classes else self.task
        return f"{type(self).__name__}({self.name!r}, {len(self):,} items, {classes}{self._describe()})"

    def _describe(self) -> str:
        return ""


class ImageDataset(LabeledDataset):
    """Images in memory (uint8 tensor N x H x W or N x C x H x W) or on disk (paths, loaded lazily with PIL).

    Items are ``(float tensor [C, H, W], label)``: with a model card, at the model's size and
    normalisation; without, in [0, 1] at native size.
    """

    def __init__(self, inputs, targets, classes, task="image-classification", name="images",
                 transform: Callable | None = None):
        super().__init__(inputs, targets, classes, task, name)
        self.transform = transform

    @property
    def augment(self) -> str:
        """The random augmentation this dataset applies: "none", a preset name, or "custom".

        ``fit`` reads it: features of a frozen backbone can be cached only when it is "none".
        """
        if self.transform is None:
            return "none"
        if isinstance(self.transform, ImageTransform):
            return "none" if self.transform.augment is None else str(self.transform.augment_name)
        return "custom"  # a transform of the user's own: it may be random

    def _prepared_parts(self) -> str | None:
        if self.transform is None:
            return "raw"
        return self.transform.fingerprint() if isinstance(self.transform, ImageTransform) else None

    def load(self, i: int) -> torch.Tensor:
        """Item ``i`` as a float tensor ``[C, H, W]`` in [0, 1], before the transform."""
        x = self.inputs[i]
        if isinstance(x, torch.Tensor):
            return to_float_image(x)
        from PIL import Image

        with Image.open(x) as image:
            grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
            return to_float_image(image.convert("L" if grey else "RGB"))

    def __getitem__(self, i: int):
        x = self.load(i)
        if self.transform is not None:
            x = self.transform(x)
        y = self.targets[i]
        # default_collate turns Python floats into float64; models train in float32.
        return x, (torch.tensor(y, dtype=torch.float32) if self.task == "regression" else y)

    def _describe(self) -> str:
        return f", {self.transform!r}" if self.transform is not None else ", raw"


class TextDataset(LabeledDataset):
    """Texts, tokenized once up front when a tokenizer is given.

    Items are ``{"input_ids", "attention_mask", "labels"}`` (unpadded; ``collate_fn`` pads a
    batch), or ``(text, label)`` without a tokenizer.
    """

    def __init__(self, inputs: Sequence[str], targets, classes, task="text-classification", name="texts",
                 tokenizer=None, max_length: int = 128, encodings: list[list[int]] | None = None):
        super().__init__(list(inputs), targets, classes, task, name)
        self.tokenizer, self.max_length = tokenizer, max_length
        self.encodings = None
        if tokenizer is not None:
            self.encodings = encodings if encodings is not None else tokenize(tokenizer, self.inputs, max_length)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            self.collate_fn = PadCollate(pad or 0)

    def subset(self, indices: Sequence[int]) -> "TextDataset":
        new = super().subset(indices)
        if self.encodings is not None:
            new.encodings = [self.encodings[int(i)] for i in indices]
        return new

    def _prepared_parts(self) -> str | None:
        if self.encodings is None:
            return "raw text"
        h = hashlib.blake2b(digest_size=16)
        for ids in self.encodings:
            h.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
        pad = getattr(self.collate_fn, "pad_id", None)
        return f"tokens {self.max_length} pad {pad} {h.hexdigest()}"

    def __getitem__(self, i: int):
        y = self.targets[i]
        if self.encodings is None:
            return self.inputs[i], y
        ids = torch.tensor(self.encodings[i], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": y}

    def _describe(self) -> str:
        return f", tokenized to {self.max_length} tokens" if self.encodings is not None else ", raw text"


@dataclass
class Splits:
    """Train, validation and test datasets, plus what they are. Unpacks as ``train, val, test = splits``."""

    train: LabeledDataset
    val: LabeledDataset
    test: LabeledDataset
    classes: list[str]
    task: str
    name: str
    source: str = ""  # where the data comes from, in words
    info: dict = field(default_factory=dict)  # seed, model card, augmentation, dataset options

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter((self.train, self.val, self.test))

    def _summary(self) -> tuple[str, list[tuple[str, int]]]:
        kind = f"{self.num_classes} classes" if self.classes else "regression"
        head = f"{self.name}: {self.task}, {kind}; prepared for {self.info.get('model') or 'no model (raw)'}"
        return head, [("train", len(self.train)), ("val", len(self.val)), ("test", len(self.test))]

    def __repr__(self) -> str:
        head, sizes = self._summary()
        lines = [f"Splits({head}"] + [f"  {name:<5} {n:>7,}" for name, n in sizes]
        if self.source:
            lines.append(f"  source: {self.source}")
        return "\n".join(lines) + ")"

    def _repr_html_(self) -> str:
        head, sizes = self._summary()
        rows = "".join(f"<tr><td>{name}</td><td style='text-align:right'>{n:,}</td></tr>" for name, n in sizes)
        source = f"<div>source: {html.escape(self.source)}</div>" if self.source else ""
        return f"<b>{html.escape(head)}</b><table>{rows}</table>{source}"


# --- turning raw data into splits ------------------------------------------------------------


@dataclass
class RawData:
    """What a dataset loader returns: all examples, and the official split if there is one."""

    inputs: object
    targets: list
    classes: list[str]
    kind: str  # "image" or "text"
    source: str
    task: str = ""
    splits: dict[str, list[int]] | None = None  # e.g. {"train": [...], "test": [...]}
    cache_key: str | None = None  # for reusing tokenizations of the built-in texts

    def __post_init__(self):
        self.task = self.task or f"{self.kind}-classification"


_ENCODINGS: dict[tuple, list[list[int]]] = {}


def _card(model) -> ModelCard | None:
    if model is None or isinstance(model, ModelCard):
        return model
    if isinstance(model, str):
        return resolve_card(model)  # catalogue names, Hugging Face ids and local folders: the card only
    if isinstance(model, nn.Module):
        card = get_card(model)
        if card is None:
            raise DataError("This model was not loaded with ft.load_model, so ftkit does not know its input size, "
                             "normalisation or tokenizer. Pass its card or catalogue name instead, "
                             "e.g. model=ft.get_card('resnet18') or model='minilm-l6'.")
        return card
    raise TypeError(f"model must be a model, a ModelCard, a catalogue name or None; got {type(model).__name__}.")


def _count(size: float | int, n: int, what: str) -> int:
    if isinstance(size, float) and 0 <= size < 1:
        return int(round(size * n))
    if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < n:
        return size
    raise DataError(f"{what} must be a fraction in [0, 1) or a whole number of examples below {n}; got {size!r}.")


def _take(targets: list, pool: Sequence[int], n: int, rng: np.random.Generator,
          stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` into (rest, ``n`` taken) at random; both come out in random order.

    Stratified: each class gives its share of the ``n``, rounded so that the shares add up
    exactly (largest remainders first); small datasets work too.
    """
    pool = rng.permutation(np.asarray(pool, dtype=np.int64))
    if not stratify or n == 0:
        return pool[n:], pool[:n]
    labels = np.asarray(targets)[pool]
    classes, which, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * n / len(pool)
    share = np.floor(quota).astype(int)
    share[np.argsort(share - quota, kind="stable")[: n - share.sum()]] += 1
    rank = np.empty(len(pool), dtype=np.int64)  # position of each example among its class, in random order
    for c in range(len(classes)):
        members = np.flatnonzero(which == c)
        rank[members] = np.arange(len(members))
    taken = rank < share[which]
    # Shuffle again: the classes that filled their share first would crowd the front of `rest`.
    return rng.permutation(pool[~taken]), rng.permutation(pool[taken])


def _make_splits(raw: RawData, name: str, card: ModelCard | None, seed: int, val_size, test_size,
                 augment, info: dict | None = None) -> Splits:
    if raw.kind == "text":
        if card is not None and not card.is_text:
            raise DataError(f"{name!r} is text, but {card.name!r} is an image model. Prepare it for a text model "
                             "such as 'minilm-l6', or pass model=None for raw text.")
        if augment not in ("none", None):
            raise DataError(f"augment={augment!r}: the augmentation presets are for images; {name!r} is text.")
        tokenizer = load_tokenizer(card) if card is not None else None
        encodings = None
        if tokenizer is not None:
            key = (raw.cache_key, card.tokenizer_path, card.max_length)
            encodings = _ENCODINGS.get(key) if raw.cache_key else None
            if encodings is None:
                encodings = tokenize(tokenizer, raw.inputs, card.max_length)
                if raw.cache_key:
                    _ENCODINGS[key] = encodings
        full = TextDataset(raw.inputs, raw.targets, raw.classes, raw.task, name, tokenizer,
                           card.max_length if card else 128, encodings)
    else:
        if card is not None and card.input_size is None:
            raise DataError(f"{name!r} is images, but {card.name!r} is a {card.task} model. Prepare it for an "
                             "image model such as 'resnet18', or pass model=None for raw images.")
        full = ImageDataset(raw.inputs, raw.targets, raw.classes, raw.task, name, image_transform(card))

    stratify = raw.task != "regression"
    # One generator for all the splits, drawn in a fixed order: the same seed, the same splits.
    rng = np.random.default_rng(seed)
    parts = raw.splits or {}
    pool = np.asarray(parts.get("train", range(len(raw.targets))))
    n_val = _count(val_size, len(pool), "val_size")  # fractions are of all the (training) examples
    if "test" in parts:  # an official test split: keep it
        test = np.asarray(parts["test"])
        train, val = (pool, np.asarray(parts["val"])) if "val" in parts else _take(raw.targets, pool, n_val, rng,
                                                                                     stratify)
    elif "val" in parts:  # train/ and val/ folders (hymenoptera): val/ gives validation and test, half each
        train = pool
        val, test = _take(raw.targets, parts["val"], len(parts["val"]) // 2, rng, stratify)
    else:
        train, test = _take(raw.targets, pool, _count(test_size, len(pool), "test_size"), rng, stratify)
        train, val = _take(raw.targets, train, n_val, rng, stratify)
    if len(train) == 0:
        raise DataError(f"No training examples left in {name!r} after taking validation and test splits.")

    splits = {"train": full.subset(train), "val": full.subset(val), "test": full.subset(test)}
    if raw.kind == "image" and augment not in ("none", None):
        splits["train"].transform = image_transform(card, augment)  # augmentation: training split only
    info = {"seed": seed, "model": card.name if card else None, "augment": augment, **(info or {})}
    return Splits(**splits, classes=list(raw.classes), task=raw.task, name=name, source=raw.source, info=info)

def _concat(parts: dict[str, tuple[list, list]]) -> tuple[list, list, dict[str, list[int]]]:
    inputs, targets, splits = [], [], {}
    for split, (x, y) in parts.items():
        splits[split] = list(range(len(targets), len(targets) + len(y)))
        inputs += [str(p) for p in x]
        targets += [int(t) for t in y]
    return inputs, targets, splits



def few_shot(split: LabeledDataset | Splits, per_class: int, seed: int = 0) -> LabeledDataset:
    """Exactly ``per_class`` examples of each class, drawn at random (the same for the same seed).

    For a seed, the examples for a smaller ``per_class`` are among those for a larger one,
    so data-efficiency curves add examples rather than swap them.

    Example:
        >>> tiny = ft.few_shot(data.train, per_class=5)    # 5 examples x 10 classes  # doctest: +SKIP
    """
    if isinstance(split, Splits):
        split = split.train
    if split.task == "regression" or not split.classes:
        raise DataError("few_shot picks examples per class; this is a regression dataset. Use "
                         "dataset.subset(indices) with indices you choose.")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise DataError(f"per_class must be a whole number >= 1, got {per_class!r}.")
    targets = np.asarray(split.targets)
    counts = np.bincount(targets, minlength=len(split.classes))
    short = [f"{split.classes[c]!r} has {counts[c]}" for c in range(len(split.classes)) if counts[c] < per_class]
    if short:
        raise DataError(f"few_shot(per_class={per_class}): not enough examples in {split.name!r}: "
                         f"{'; '.join(short)}. Use per_class <= {counts.min()}, or a larger split.")
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(targets == c))[:per_class]
                             for c in range(len(split.classes))])
    return split.subset(chosen[rng.permutation(len(chosen))])


def _with_max_length(card: ModelCard | None, max_length: int | None, where: str) -> ModelCard | None:
    """The card with another number of tokens per text (``max_length=`` of load_dataset and from_csv)."""
    if max_length is None:
        return card
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length is a number of tokens per text, a whole number >= 1; got {max_length!r}.")
    if card is None or not card.is_text:
        what = "no model" if card is None else f"{card.name!r}, which does not read text"
        raise ValueError(f"max_length= sets how many tokens of each text a language model reads, but "
                         f"{where} got {what}. Pass a text model (e.g. model='minilm-l6'), "
                         "or leave max_length out.")
    return dataclasses.replace(card, max_length=max_length)
