"""The whole classification head is one layer group: every layer that starts random, and nothing else.

Each case saves a tiny pre-trained *base* model, then builds the task model from it with
transformers, which reports the weights it had to initialise (``missing_keys``): exactly those
must form ftkit's head group, so ``freeze`` trains them, slice LRs give them the highest rate, and
regularisers and the feature cache do not take them for pre-trained backbone.
"""
import pytest
import torch
import transformers as T

import ftkit as ft
from ftkit.models.groups import head_modules

SMALL = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
CASES = {
    "bert": (lambda: T.BertConfig(vocab_size=64, **SMALL), T.BertModel, T.BertForSequenceClassification),
    "distilbert": (lambda: T.DistilBertConfig(vocab_size=64, dim=16, n_layers=2, n_heads=2, hidden_dim=32),
                   T.DistilBertModel, T.DistilBertForSequenceClassification),
    "roberta": (lambda: T.RobertaConfig(vocab_size=64, **SMALL), T.RobertaModel, T.RobertaForSequenceClassification),
    "deberta": (lambda: T.DebertaV2Config(vocab_size=64, **SMALL), T.DebertaV2Model,
                T.DebertaV2ForSequenceClassification),
    "vit": (lambda: T.ViTConfig(image_size=8, patch_size=4, num_channels=1, **SMALL), T.ViTModel,
            T.ViTForImageClassification),
    "gpt2": (lambda: T.GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=32, pad_token_id=0),
             T.GPT2Model, T.GPT2ForSequenceClassification),
}


def task_model(tmp_path, name):
    config, base, task = CASES[name]
    torch.manual_seed(0)
    base(config()).save_pretrained(tmp_path / name)
    model, info = task.from_pretrained(tmp_path / name, num_labels=3, output_loading_info=True)
    return model, set(info["missing_keys"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_head_group_is_exactly_the_newly_initialised_layers(tmp_path, name):
    model, new = task_model(tmp_path, name)
    groups = ft.layer_groups(model)
    assert groups[-1].name == "head" and set(groups[-1].names) == new, (head_modules(model), new)
    ft.freeze(model)  # the head only: every new layer trains, every pre-trained one is frozen
    assert {n for n, p in model.named_parameters() if p.requires_grad} == new
    lrs = {g["group"]: g["lr"] for g in ft.make_optimizer(model, lr=slice(1e-5, 1e-3)).param_groups}
    assert lrs["head"] == max(lrs.values())


def test_distilbert_pre_classifier_is_head_for_l2sp_and_the_feature_cache(tmp_path):
    model, new = task_model(tmp_path, "distilbert")
    l2sp = ft.L2SP(model, alpha=1.0, beta=0.0)
    assert not any(n in l2sp.start for n in new)  # not pulled back to its random start
    ft.freeze(model)
    ids = torch.randint(0, 64, (12, 6))
    data = [{"input_ids": ids[i], "attention_mask": torch.ones(6, dtype=torch.long), "labels": torch.tensor(i % 3)}
            for i in range(12)]
    history = ft.fit(model, data, epochs=1, batch_size=4, progress=False, live=False)
    assert history.info["path"] == "full" and "pre_classifier" in history.info["path_reason"]


def test_a_tied_language_model_head_is_the_head_group():
    torch.manual_seed(0)
    model = T.GPT2LMHeadModel(CASES["gpt2"][0]())
    groups = ft.layer_groups(model)
    assert groups[-1].name == "head" and groups[-1].names == ["transformer.wte.weight"]  # tied to lm_head
    ft.freeze(model)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["transformer.wte.weight"]
    lrs = {g["group"]: g["lr"] for g in ft.make_optimizer(model, lr=slice(1e-5, 1e-3)).param_groups}
    assert lrs["head"] == max(lrs.values()) and lrs["embeddings"] == min(lrs.values())
