"""Self-checks for lesson 07 (parameter-efficient fine-tuning).

Every question asks for a prediction that the check then measures, on ftkit's own modules:
Q1 counts the parameters LoRA adds to one layer, Q2 those that train in MiniLM with LoRA on
two of its attention projections (rank 16), Q3 looks at the gradients of LoRA's A and B at the first
step, and Q4 measures how long the sequences are inside MiniLM after prompt tuning.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from ...models.catalogue import load_model
from ...tuning.adapt import prompt_tuning
from ...tuning.lora import LoRALinear, add_lora
from ._core import _MISSING_HINT, Verdict, check_choice, check_number, missing

MODEL = "minilm-l6"  # the lesson's model, 5 topics
Q1_LAYER, Q1_RANK = (384, 1536), 4  # MiniLM's feed-forward up-projection (in, out), and the rank
Q2_TARGETS, Q2_RANK = r"(query|value)$", 16
Q4_TOKENS, Q4_PROMPT = 16, 20  # article length in tokens (the lesson's), prompt vectors


def _q1_measured() -> int:
    """Parameters LoRA (rank Q1_RANK) adds to an nn.Linear of MiniLM's feed-forward size."""
    layer = LoRALinear(nn.Linear(*Q1_LAYER), r=Q1_RANK, alpha=2 * Q1_RANK)
    return sum(p.numel() for name, p in layer.named_parameters() if name.startswith(("lora_A", "lora_B")))


def q1(answer) -> Verdict:
    """Predict, then run: how many parameters does LoRA with r=4 add to a 384 -> 1536 nn.Linear?"""
    if missing(answer):
        return Verdict(False, _MISSING_HINT)
    n_in, n_out = Q1_LAYER
    expected = _q1_measured()
    return check_number(
        answer, expected,
        hint=f"A is r x in and B is out x r. The layer's weight W is out x in = {n_out} x {n_in}, and the "
             "LoRA layer in section 1 stores A and B as its only new parameters (no bias). Count the numbers "
             "in each matrix.",
        why=f"Measured: {expected:,} parameters, r x (in + out) = {Q1_RANK} x ({n_in} + {n_out}), against "
            f"{n_in * n_out:,} in W itself ({expected / (n_in * n_out):.1%}).")


@lru_cache(maxsize=1)
def _q2_measured() -> tuple[int, int]:
    """(trainable parameters, LoRA's part of them) in MiniLM with LoRA r=16 on query and value, head included."""
    torch.manual_seed(0)
    model = add_lora(load_model(MODEL, num_classes=5), r=Q2_RANK, alpha=2 * Q2_RANK, targets=Q2_TARGETS)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lora = sum(p.numel() for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n)
    return trainable, lora


def q2(answer) -> Verdict:
    """Predict, then run: MiniLM with LoRA r=16 on query and value only: how many parameters train (head included)?"""
    if missing(answer):
        return Verdict(False, _MISSING_HINT)
    trainable, lora = _q2_measured()
    return check_number(
        answer, trainable,
        hint="MiniLM has 6 transformer layers; in each, the query and the value projections are 384 x 384, "
             "and each gets its own A and B. Then add the new head, which trains too: a Linear from 384 "
             "features to 5 topics, with a bias (section 2's table shows its size).",
        why=f"Measured: {trainable:,} trainable parameters: {lora:,} in LoRA's A and B (6 layers x 2 "
            f"projections x {Q2_RANK} x (384 + 384)) and {trainable - lora:,} in the head.")


def _q3_measured() -> dict[str, float]:
    """Gradient norms of A and B at the first step of a fresh LoRA layer, on random data."""
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(32, 16), r=4, alpha=8)
    x, target = torch.randn(8, 32), torch.randn(8, 16)
    nn.functional.mse_loss(layer(x), target).backward()
    return {"A": float(layer.lora_A.weight.grad.norm()), "B": float(layer.lora_B.weight.grad.norm())}


def q3(answer) -> Verdict:
    """Predict, then run: at LoRA's first step (B = 0), which of A and B get a non-zero gradient?"""
    if missing(answer):
        return Verdict(False, _MISSING_HINT)
    g = _q3_measured()
    moving = {name for name, norm in g.items() if norm > 0}
    expected = {frozenset(): "neither", frozenset({"A"}): "A", frozenset({"B"}): "B"}.get(frozenset(moving), "both")
    return check_choice(
        answer, expected, {"A": "only A", "B": "only B", "both": "both", "neither": "neither"},
        hint="Write the update's output as B (A x). The gradient of a matrix in a product is the incoming "
             "gradient times what the matrix multiplies: for B, that is A x; for A, the gradient has to "
             "pass back through B first. Which of the two is zero at the start?",
        why=f"Measured gradient norms: A {g['A']:.3g}, B {g['B']:.3g}. A's gradient passes back through B, "
            "which is zero, so only B moves at the first step; once B is not zero, A learns too. The zero "
            "start is what makes the model begin exactly as the pre-trained one.")


@lru_cache(maxsize=1)
def _q4_measured() -> int:
    """Positions the first transformer layer sees with a soft prompt, for an input of Q4_TOKENS tokens."""
    torch.manual_seed(0)
    model = prompt_tuning(load_model(MODEL, num_classes=5), n_tokens=Q4_PROMPT).eval()
    seen = []
    layer = model.bert.encoder.layer[0]
    # A transformers layer returns its hidden states (batch x positions x features), alone or first in a tuple.
    hidden = lambda out: out[0] if isinstance(out, tuple) else out
    handle = layer.register_forward_hook(lambda module, args, out: seen.append(hidden(out).shape[1]))
    try:
        with torch.no_grad():
            model(input_ids=torch.full((1, Q4_TOKENS), 1000), attention_mask=torch.ones(1, Q4_TOKENS, dtype=torch.long))
    finally:
        handle.remove()
    return seen[0]


def q4(answer) -> Verdict:
    """Predict, then run: with 20 prompt vectors, how many positions does each layer see for a 16-token article?"""
    if missing(answer):
        return Verdict(False, _MISSING_HINT)
    expected = _q4_measured()
    return check_number(
        answer, expected,
        hint="Prompt tuning does not change the article's tokens: it puts its trainable vectors in front of "
             "them, before the first layer. How long is the sequence that the layers then work on?",
        why=f"Measured: {expected} positions ({Q4_PROMPT} prompt vectors + {Q4_TOKENS} tokens). Every layer "
            "now attends over a longer sequence, so prompt tuning makes each step more expensive, not cheaper, "
            "when the texts are short.")


__all__ = ["q1", "q2", "q3", "q4"]
