"""What lesson 08 relies on from the library, checked on the tiny GPT in seconds.

LoRA on a causal LM trains only its low-rank matrices: the output layer, tied to the token
embeddings, stays as pre-trained, and so does every other pre-trained weight.
"""
import torch

import ftkit as ft


def test_lora_on_the_gpt_trains_only_the_low_rank_matrices_and_keeps_the_tied_head():
    start = ft.load_model("bbc-gpt")
    assert start.lm_head.weight is start.transformer.wte.weight  # tied: the head is the embedding
    model = ft.load_model("bbc-gpt")
    ft.add_lora(model, r=8, alpha=16, targets=r"(c_attn|c_proj|c_fc)$")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(trainable) == 2 * 4 * 4  # A and B for c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj in 4 layers

    sport = ft.load_dataset("bbc-lm", model, topics=("sports",))
    ft.fit(model, sport.train.subset(range(32)), epochs=1, lr=1e-2, batch_size=16, progress=False, live=False)
    ft.merge_lora(model)  # fold B A into the weights: now the update shows in the pre-trained tensors
    after, before = model.state_dict(), start.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "lm_head.weight" not in changed and "transformer.wte.weight" not in changed
    assert changed and all(k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) for k in changed), changed
