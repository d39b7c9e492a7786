"""Self-checks for lesson 08 (generative fine-tuning).

Q1 asks for a perplexity from a mean loss; Q4 for LoRA's parameter count, which the check
counts on a real model. Q2 and Q3 ask for a prediction that the check then measures: Q2
fine-tunes the tiny GPT on sport with the lesson's recipe and seeds and scores it on
entertainment news, a domain neither the pre-training nor the fine-tuning saw; Q3 samples
from the pre-trained GPT at two temperatures and counts how varied the words are.
"""
from __future__ import annotations

import math
import re
import statistics
from functools import lru_cache

import torch

from ...data.catalogue import load_dataset
from ...models.catalogue import load_model, load_tokenizer
from ...train.evaluate import evaluate
from ...train.loop import fit
from ...tuning.lora import add_lora
from ._core import _MISSING_HINT, Verdict, as_number, check_number, missing, one_of, right, wrong

# The lesson's offline setting (lessons/08_generative_fine_tuning.ipynb, sections 1 and 4).
MODEL = "bbc-gpt"
SEEDS = (0, 1, 2)
STEPS, BATCH, LR = 30, 16, 1e-3  # 30 steps of 16 sport blocks, constant rate
Q1_LOSS = 3.9  # Q1: a mean next-token loss, in nats per token
Q3_TEMPERATURES, Q3_SAMPLES, Q3_TOKENS = (0.3, 1.5), 8, 40
Q4_RANK = 4  # Q4: LoRA's rank, on the attention projections (c_attn) only


def q1(answer) -> Verdict:
    """A model's mean next-token loss on a test split is 3.9 nats per token: what is its perplexity?"""
    expected = math.exp(Q1_LOSS)
    value = as_number(answer)
    if value is not None and math.isclose(value, Q1_LOSS, rel_tol=1e-3):
        return wrong("That is the loss itself. Perplexity undoes the logarithm in the loss: it is the exponential "
                     "of the mean loss.")
    return check_number(
        answer, expected, rel=0.01,
        hint="Perplexity is exp(mean loss), with the natural exponential (the loss is in nats: cross-entropy uses "
             "the natural log). Section 2 computes it from the summed loss and the number of predicted tokens.",
        why=f"exp({Q1_LOSS}) = {expected:.1f}: the model is as unsure as if it chose uniformly among about "
            f"{expected:.0f} tokens at every step (the tiny GPT's vocabulary has 2,048).")


def _blocks(seed: int, train):
    """The lesson's draw: which STEPS * BATCH training blocks a seed trains on (and in what order, with fit's seed)."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: STEPS * BATCH]
    return train.subset(order.tolist())


@lru_cache(maxsize=1)
def _q2_measured() -> dict:
    """Perplexity on held-out entertainment blocks before and after the lesson's sport fine-tune, per seed."""
    sport = load_dataset("bbc-lm", MODEL, topics=("sports",))
    other = load_dataset("bbc-lm", MODEL, topics=("entertainment",)).test
    other = other.subset(range(0, len(other), 2))
    before = evaluate(load_model(MODEL), other)["perplexity"]
    after = []
    for seed in SEEDS:
        model = load_model(MODEL)
        fit(model, _blocks(seed, sport.train), epochs=1, lr=LR, batch_size=BATCH, schedule="constant", seed=seed,
            progress=False, live=False)
        after.append(evaluate(model, other)["perplexity"])
    return {"before": before, "after": after}


def q2(answer) -> Verdict:
    """Predict, then run: after the sport fine-tune, does perplexity on entertainment news rise or fall?"""
    said = one_of(answer, ("rise", "fall"))
    if isinstance(said, Verdict):
        return said
    m = _q2_measured()
    change = [a / m["before"] - 1 for a in m["after"]]
    mean = statistics.fmean(change)
    measured = (f"Measured on held-out entertainment articles: perplexity {m['before']:.1f} before, "
                f"{' '.join(f'{a:.1f}' for a in m['after'])} after (seeds {', '.join(map(str, SEEDS))}), "
                f"{100 * mean:+.0f}% on average. ")
    truth = "fall" if mean < 0 else "rise"
    if said == truth:
        return right(measured + ("Entertainment news shares much with sport news that business, politics and tech "
                                 "do not: people's names, events, results, a chattier style. What the model learnt "
                                 "from sport carried over to a domain it never trained on." if truth == "fall" else
                                 "The fine-tune made sport's own words, names and turns of phrase likelier; the "
                                 "probabilities of the next token sum to one, so text that needs other tokens, "
                                 "entertainment news included, became less likely. Fine-tuning specialises."))
    return wrong(measured + "Fine-tuning on sport makes what is common in sport likelier, and the probabilities of "
                 "the next token sum to one. Weigh what entertainment news shares with sport (names, events) "
                 "against what it needs that sport text does not have.")


@lru_cache(maxsize=1)
def _q3_measured() -> dict[float, float]:
    """The share of distinct words in samples of the pre-trained GPT, at each of Q3's temperatures."""
    model = load_model(MODEL).eval()
    tokenizer = load_tokenizer(model)
    share = {}
    for temperature in Q3_TEMPERATURES:
        generator = torch.Generator().manual_seed(0)
        ids = torch.full((Q3_SAMPLES, 1), tokenizer.eos_token_id)
        with torch.no_grad():
            for _ in range(Q3_TOKENS):
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1] / temperature
                ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1, generator=generator)], 1)
        words = [re.findall(r"[a-z]+", text.lower()) for text in tokenizer.batch_decode(ids[:, 1:])]
        share[temperature] = statistics.fmean(len(set(w)) / max(1, len(w)) for w in words)
    return share


def q3(answer) -> Verdict:
    """Predict, then run: are samples at temperature 0.3 more or less varied (distinct words) than at 1.5?"""
    said = one_of(answer, ("more", "less"))
    if isinstance(said, Verdict):
        return said
    share = _q3_measured()
    low, high = (share[t] for t in Q3_TEMPERATURES)
    measured = (f"Measured: {low:.0%} of the words in a sample are distinct at temperature {Q3_TEMPERATURES[0]}, "
                f"{high:.0%} at {Q3_TEMPERATURES[1]} (mean of {Q3_SAMPLES} samples of {Q3_TOKENS} tokens). ")
    truth = "less" if low < high else "more"
    if said == truth:
        return right(measured + ("A low temperature sharpens the distribution towards the most likely token, and a "
                                 "small model's most likely continuation often repeats itself: the greedy sample of "
                                 "section 3 did. A high one flattens it, so rare words come up more often."
                                 if truth == "less" else "Here the low temperature gave the more varied samples."))
    return wrong(measured + "Dividing the logits by a temperature below 1 makes the largest ones stand out more "
                 "before the softmax. What did the greedy sample (temperature 0) of section 3 do?")


def _q4_count() -> int:
    model = load_model(MODEL)
    add_lora(model, r=Q4_RANK, alpha=2 * Q4_RANK, targets=r"c_attn$")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def q4(answer) -> Verdict:
    """How many parameters does LoRA of rank 4 on the tiny GPT's c_attn layers (4 layers, 128 -> 384) train?"""
    if missing(answer):
        return wrong(_MISSING_HINT)
    expected = _q4_count()
    return check_number(
        answer, expected,
        hint="Each c_attn maps 128 numbers to 384 (query, key and value at once). LoRA adds A (r x in) and B "
             "(out x r) beside it, and there is one c_attn in each of the 4 layers. The pre-trained weights, "
             "the head included, stay frozen.",
        why=f"4 layers x (4 x 128 + 384 x 4) = {expected:,} (counted on the model with ft.add_lora), against "
            "c_attn's own 4 x 128 x 384 = 196,608 weights.")


__all__ = ["q1", "q2", "q3", "q4"]
