"""Transforms that come from the model card, augmentation presets, and text padding.

A pre-trained network expects its inputs exactly as it saw them in pre-training: the
same number of channels, the same size, the same normalisation (timm keeps these in
``PretrainedCfg``; ftkit keeps them in the ``ModelCard``). ``image_transform(card)``
builds that pipeline, so the data always matches the model it is prepared for.

Images flow as float tensors ``[C, H, W]`` in [0, 1]:
    channels (grey <-> RGB) -> resize to the card's H x W -> augmentation -> normalise.
Augmentation runs before normalisation, so brightness and erasing act on real pixel values.

Example:
    >>> import ftkit as ft
    >>> from ftkit.data.transforms import image_transform
    >>> t = image_transform(ft.get_card("resnet18"), augment="light")
    >>> t(torch.rand(1, 8, 8)).shape
    torch.Size([3, 224, 224])
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.catalogue import ModelCard

PRESETS = ("none", "light", "strong")
# ITU-R 601 luma weights: the grey level PIL's convert("L") and torchvision compute.
_LUMA = (0.299, 0.587, 0.114)


def to_float_image(x) -> torch.Tensor:
    """A uint8 tensor ``[H, W]`` / ``[C, H, W]``, a PIL image or a float tensor -> float ``[C, H, W]`` in [0, 1]."""
    if not isinstance(x, torch.Tensor):  # a PIL image (or a numpy array)
        x = torch.from_numpy(np.array(x, copy=True))
        if x.ndim == 3:
            x = x.permute(2, 0, 1)  # PIL and numpy are H x W x C
    if x.ndim == 2:
        x = x[None]
    if x.dtype == torch.uint8:
        return x.float() / 255
    return x.float()


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repeating the channel; RGB -> grey by luminance; an alpha channel is dropped."""
    have = x.shape[-3]
    if have in (2, 4):  # grey + alpha, RGB + alpha
        x, have = x[..., : have - 1, :, :], have - 1
    if have == channels:
        return x
    if have == 1:
        return x.expand(*x.shape[:-3], channels, *x.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * weights).sum(-3, keepdim=True)
    raise ValueError(f"Cannot convert an image with {have} channels to {channels} channels.")


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking) of a float tensor ``[..., H, W]`` to ``size = (H, W)``."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *size)


class RandomResizedCropSameSize:
    """Crop a random part (``scale`` of the area, aspect in ``ratio``) and resize it back to the input's size.

    torchvision's ``RandomResizedCrop`` needs the output size up front; raw images of
    different sizes (``model=None``) keep their own.
    """

    def __init__(self, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3)):
        self.scale, self.ratio = scale, ratio

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import v2

        height, width = x.shape[-2:]
        top, left, h, w = v2.RandomResizedCrop.get_params(x, list(self.scale), list(self.ratio))
        return resize(x[..., top:top + h, left:left + w], (height, width))

    def __repr__(self) -> str:
        return f"RandomResizedCropSameSize(scale={self.scale})"


def augmentation(preset: str | Callable | None, input_size: Sequence[int] | None = None) -> Callable:
    """A random transform for training images (float ``[C, H, W]`` in [0, 1]), by name.

    Presets (no horizontal flips: a flipped '2' or 'R' is not a '2' or an 'R'; add
    ``v2.RandomHorizontalFlip()`` yourself for photos):
        ``"none"``: nothing.
        ``"light"``: small affine jitter (rotate 10 degrees, shift 8%, scale 0.9-1.1).
        ``"strong"``: stronger affine + random resized crop (60-100% of the area)
        + brightness/contrast jitter + random erasing of a patch.

    Args:
        preset: a preset name, or your own callable (returned as is).
        input_size: ``(C, H, W)`` or ``(H, W)`` of the images, for the resized crop; ``None``
            keeps each image's own size.

    Example:
        >>> aug = augmentation("strong", input_size=(1, 32, 32))
        >>> aug(torch.rand(1, 32, 32)).shape
        torch.Size([1, 32, 32])
    """
    from torchvision.transforms import v2

    if callable(preset):
        return preset
    if preset is None or preset == "none":
        return v2.Identity()
    if preset == "light":
        return v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1))
    if preset == "strong":
        crop = (v2.RandomResizedCrop(tuple(input_size)[-2:], scale=(0.6, 1.0), antialias=True)
                if input_size is not None else RandomResizedCropSameSize(scale=(0.6, 1.0)))
        return v2.Compose([
            v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=8),
            crop,
            v2.ColorJitter(brightness=0.4, contrast=0.4),
            # Erasing (Zhong et al. 2017) makes the model use more than one part of the object.
            v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0),
        ])
    raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {PRESETS}, "
                     "or pass your own callable (e.g. a torchvision.transforms.v2.Compose).")


class ImageTransform:
    """float ``[C, H, W]`` in [0, 1] -> the card's channels and size -> augmentation -> normalisation.

    Every step is optional: with no card, only the augmentation runs (raw images).
    A class rather than a closure so that DataLoader worker processes can pickle it.
    """

    def __init__(self, channels: int | None = None, size: Sequence[int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 augment: str | Callable | None = "none"):
        self.channels = channels
        self.size = tuple(size) if size is not None else None
        self.mean = torch.tensor(mean).view(-1, 1, 1) if mean is not None else None
        self.std = torch.tensor(std).view(-1, 1, 1) if std is not None else None
        self.augment_name = augment if isinstance(augment, str) or augment is None else type(augment).__name__
        input_size = (channels, *self.size) if self.size is not None else None
        self.augment = None if augment in (None, "none") else augmentation(augment, input_size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is not None:
            x = convert_channels(x, self.channels)
        if self.size is not None:
            x = resize(x, self.size)
        if self.augment is not None:
            x = self.augment(x)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def fingerprint(self) -> str:
        """Every setting that changes the output, as text (the feature cache keys on it)."""
        stats = [None if t is None else t.flatten().tolist() for t in (self.mean, self.std)]
        return f"ImageTransform({self.channels}, {self.size}, {stats[0]}, {stats[1]}, {self.augment_name!r})"

    def __repr__(self) -> str:
        size = "native size" if self.size is None else f"{self.channels}x{self.size[0]}x{self.size[1]}"
        norm = "" if self.mean is None else ", normalised"
        return f"ImageTransform({size}{norm}, augment={self.augment_name!r})"


def with_augmentation(data: Any, preset: str | Callable | None) -> Any:
    """The same images with augmentation ``preset`` applied each time an example is read.

    Returns a shallow copy of an ftkit image dataset (``ft.load_dataset``, ``ft.few_shot``,
    ``ft.from_folder``) whose transform has the new preset; the images, labels and the
    rest of the transform (channels, size, normalisation) are shared, and ``data`` is left
    as it was. ``"none"`` (or None) switches augmentation off, e.g. to score the training
    examples as they are. Anything else than an ftkit image dataset is returned unchanged
    when ``preset`` is off, and is an error otherwise.

    Example:
        >>> train = ft.with_augmentation(data.train, "strong")  # doctest: +SKIP
        >>> clean = ft.with_augmentation(train, "none")  # doctest: +SKIP
    """
    t = getattr(data, "transform", None)
    off = preset is None or preset == "none"
    if not isinstance(t, ImageTransform):
        if off:
            return data
        raise TypeError(f"Augmentation presets apply to ftkit image datasets (from ft.load_dataset, ft.few_shot or "
                        f"ft.from_folder), whose transform is an ImageTransform; got a {type(data).__name__}"
                        f"{'' if t is None else ' with transform ' + type(t).__name__}. Put your own random "
                        "transform in your dataset instead.")
    if not callable(preset) and preset not in PRESETS and not off:
        raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {PRESETS}, or pass your own callable.")
    if (off and t.augment is None) or (isinstance(preset, str) and preset == t.augment_name):
        return data
    flat = lambda x: None if x is None else x.flatten().tolist()
    new = copy.copy(data)
    new.transform = ImageTransform(t.channels, t.size, flat(t.mean), flat(t.std), augment=preset)
    return new


def image_transform(card: ModelCard | None, augment: str | Callable | None = "none") -> ImageTransform:
    """The transform that prepares images for the model a card describes (``None``: raw images).

    Example:
        >>> image_transform(ft.get_card("resnet18"))
        ImageTransform(3x224x224, normalised, augment='none')
    """
    if card is None:
        return ImageTransform(augment=augment)
    if card.input_size is None:
        raise ValueError(f"{card.name!r} is a {card.task} model with no image input size in its card; "
                         "image data needs an image model (e.g. 'resnet18') or model=None.")
    channels, height, width = card.input_size
    return ImageTransform(channels, (height, width), card.mean, card.std, augment)


# --- text --------------------------------------------------------------------------------


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text, truncated to ``max_length`` tokens, in one batched call.

    Tokenizers read the whole text before truncating, and a news article is ten times
    longer than 128 tokens. Tokenizers split at spaces first, so cutting a text at a space
    well past what ``max_length`` tokens can cover keeps its first tokens unchanged; the
    rare text whose cut is too short is tokenized again in full.

    Example:
        >>> ids = tokenize(ft.load_tokenizer(ft.get_card("minilm-l6")), ["A cat sat."], 128)
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000 and max_length > limit:
        warnings.warn(f"max_length={max_length} is more than this model reads ({limit} tokens, its position "
                      f"embeddings): the texts are cut at {limit} tokens.", stacklevel=3)
        max_length = limit
    budget = 8 * max_length  # characters; English averages about 4-5 per token
    cut = [t if len(t) <= budget or t.rfind(" ", 0, budget) <= 0 else t[: t.rfind(" ", 0, budget)] for t in texts]
    ids = tokenizer(list(cut), truncation=True, max_length=max_length)["input_ids"]
    redo = [i for i, (c, t) in enumerate(zip(cut, texts)) if len(c) < len(t) and len(ids[i]) < max_length]
    if redo:
        again = tokenizer([texts[i] for i in redo], truncation=True, max_length=max_length)["input_ids"]
        for i, row in zip(redo, again):
            ids[i] = row
    return [list(row) for row in ids]


class PadCollate:
    """Pad a list of text items to the longest one: a batch dict of tensors for the model.

    Padding is on the right with the tokenizer's pad token, and ``attention_mask`` is 0
    there, so the model ignores it. A class so that DataLoader workers can pickle it.

    Example:
        >>> item = lambda ids, y: {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids)), "labels": y}
        >>> PadCollate(0)([item([101, 7, 102], 1), item([101, 102], 0)])["input_ids"]
        tensor([[101,   7, 102],
                [101, 102,   0]])
    """

    def __init__(self, pad_id: int = 0):
        self.pad_id = int(pad_id)

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in items)
        ids = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            ids[row, :n] = torch.as_tensor(item["input_ids"])
            mask[row, :n] = torch.as_tensor(item["attention_mask"])
        labels = [item["labels"] for item in items]
        dtype = torch.float32 if isinstance(labels[0], float) else torch.long
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels, dtype=dtype)}

    def __repr__(self) -> str:
        return f"PadCollate(pad_id={self.pad_id})"
