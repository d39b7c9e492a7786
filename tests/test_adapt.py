"""LoRA, adapters, BitFit and prompt tuning on tiny models, against references (peft, the base model)."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ftkit.models.groups import head_name, layer_groups
from ftkit.train.loop import fit
from ftkit.tuning.adapt import WithAdapter, add_adapters, bitfit, from_peft, prompt_tuning, to_peft
from ftkit.tuning.freeze import bn_mode, trainable_summary
from ftkit.tuning.lora import (
    LoRAConv2d,
    LoRALinear,
    add_lora,
    load_adapter,
    lora_modules,
    merge_lora,
    save_adapter,
    unmerge_lora,
)

pytestmark = pytest.mark.usefixtures("one_thread")



def tiny_bert(num_labels=3):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(2)
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     vocab_size=100, max_position_embeddings=64, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=32,
                                      bos_token_id=0, eos_token_id=0)).eval()


def tiny_cnn():
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()


def text_batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def logits(model, batch):
    return model(**batch).logits if isinstance(batch, dict) else model(batch)


def randomize_lora(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.weight.copy_(torch.randn(m.lora_B.weight.shape, generator=g) * 0.1)


CASES = {"bert": (tiny_bert, text_batch), "gpt2": (tiny_gpt2, text_batch),
         "cnn": (tiny_cnn, lambda: torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)))}


@pytest.mark.parametrize("case", list(CASES))
def test_lora_starts_as_the_base_model_and_merges_back(case):
    make, inputs = CASES[case]
    base, x = make(), inputs()
    model = add_lora(copy.deepcopy(base), r=4, alpha=8)
    assert lora_modules(model)
    assert torch.equal(logits(model, x), logits(base, x))  # B = 0: exactly the base model
    randomize_lora(model)
    unmerged = logits(model, x)
    assert not torch.allclose(unmerged, logits(base, x))
    merge_lora(model, remove=False)  # merged, modules kept: forward skips the low-rank path
    torch.testing.assert_close(logits(model, x), unmerged, atol=1e-5, rtol=1e-4)
    unmerge_lora(model)
    torch.testing.assert_close(logits(model, x), unmerged, atol=1e-5, rtol=1e-4)
    merge_lora(model)
    torch.testing.assert_close(logits(model, x), unmerged, atol=1e-5, rtol=1e-4)
    assert not lora_modules(model)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in base.named_parameters()]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())


def test_lora_chooses_sensible_targets_and_freezes_the_rest():
    bert = add_lora(tiny_bert(), r=4)
    assert sorted(lora_modules(bert))[:3] == ["bert.encoder.layer.0.attention.self.key",
                                              "bert.encoder.layer.0.attention.self.query",
                                              "bert.encoder.layer.0.attention.self.value"]
    trainable = {n for n, p in bert.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in bert.named_parameters() if ".lora_" in n or n.startswith("classifier.")}
    gpt = add_lora(tiny_gpt2(), r=4)
    assert list(lora_modules(gpt)) == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    assert not any(p.requires_grad for n, p in gpt.named_parameters() if ".lora_" not in n)  # LM head stays
    cnn = add_lora(tiny_cnn(), r=2)
    assert {type(m) for m in lora_modules(cnn).values()} == {LoRAConv2d}  # the head (4) is not wrapped
    assert bn_mode(cnn[0][1]) == "frozen"
    picked = add_lora(tiny_bert(), targets=r"layer\.1\..*value$")
    assert list(lora_modules(picked)) == ["bert.encoder.layer.1.attention.self.value"]
    assert isinstance(picked.bert.encoder.layer[1].attention.self.value, LoRALinear)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(picked)
    with pytest.raises(ValueError, match="No layer matches"):
        add_lora(tiny_bert(), targets="nothing_like_this")
    with pytest.raises(ValueError, match="rank r"):
        add_lora(tiny_bert(), r=0)


def test_lora_parameters_land_in_layer_groups_exactly_once():
    for model in (add_lora(tiny_bert(), r=4), add_adapters(tiny_bert(), 8), prompt_tuning(tiny_bert(), 4),
                  bitfit(tiny_bert()), add_lora(tiny_cnn(), r=2), add_adapters(tiny_cnn(), 4)):
        names = [n for g in layer_groups(model) for n in g.names]
        assert sorted(names) == sorted(n for n, _ in model.named_parameters())
        rows = trainable_summary(model).rows
        assert sum(r["trainable"] for r in rows) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    groups = {g.name: g for g in layer_groups(add_lora(tiny_bert(), r=4))}
    assert groups["block0"].trainable == 3 * (4 * 32 + 32 * 4) and groups["embeddings"].trainable == 0


def peft_twin(base, model, **config):
    """The same base model wrapped by peft with the same targets and LoRA weights as ``model``."""
    import peft

    names = sorted(lora_modules(model))
    twin = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(target_modules=names, **config))
    state = {f"base_model.model.{n}.{ab}.default.weight": getattr(m, ab).weight
             for n, m in lora_modules(model).items() for ab in ("lora_A", "lora_B")}
    missing = set(state) - set(twin.state_dict())
    assert not missing, missing
    twin.load_state_dict(state, strict=False)
    return twin.eval()


@pytest.mark.parametrize("case", list(CASES))
def test_lora_output_equals_peft_for_the_same_weights(case):
    make, inputs = CASES[case]
    base, x = make(), inputs()
    model = add_lora(copy.deepcopy(base), r=4, alpha=12, train_head=False)
    randomize_lora(model)
    config = {"fan_in_fan_out": True} if case == "gpt2" else {}
    twin = peft_twin(base, model, r=4, lora_alpha=12, **config)
    torch.testing.assert_close(logits(model, x), logits(twin, x), atol=1e-6, rtol=1e-5)


def test_adapters_round_trip_with_peft(tmp_path):
    import peft

    base, x = tiny_bert(), text_batch()
    model = add_lora(copy.deepcopy(base), r=4)
    randomize_lora(model)
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # a trained head is part of the adapter
    expected = logits(model, x)
    save_adapter(model, tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["adapter_config.json",
                                                                     "adapter_model.safetensors"]
    config = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["modules_to_save"] == ["classifier"]
    # ftkit -> ftkit
    again = load_adapter(copy.deepcopy(base), tmp_path / "ours")
    assert torch.equal(logits(again, x), expected)
    # ftkit -> peft
    theirs = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    torch.testing.assert_close(logits(theirs, x), expected, atol=1e-6, rtol=1e-5)
    # peft -> ftkit
    theirs.save_pretrained(tmp_path / "peft")
    back = load_adapter(copy.deepcopy(base), tmp_path / "peft")
    torch.testing.assert_close(logits(back, x), expected, atol=1e-6, rtol=1e-5)
    # the live conversions
    converted = to_peft(copy.deepcopy(model)).eval()
    assert isinstance(converted, peft.PeftModel)
    torch.testing.assert_close(logits(converted, x), expected, atol=1e-6, rtol=1e-5)
    plain = from_peft(converted).eval()
    assert not isinstance(plain, peft.PeftModel) and lora_modules(plain)
    torch.testing.assert_close(logits(plain, x), expected, atol=1e-6, rtol=1e-5)


def test_load_adapter_checks_the_fit_before_changing_anything(tmp_path):
    model = add_lora(tiny_bert(), r=4)
    save_adapter(model, tmp_path / "a")
    other = tiny_bert(num_labels=5)  # another head size
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit"):
        load_adapter(other, tmp_path / "a")
    assert not lora_modules(other)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in before.items())
    with pytest.raises(FileNotFoundError, match="not an adapter folder"):
        load_adapter(other, tmp_path)
    with pytest.raises(ValueError, match="no LoRA modules"):
        save_adapter(tiny_bert(), tmp_path / "b")


def test_adapters_start_as_identity_and_train_alone():
    for make, inputs, sites in ((tiny_bert, text_batch, 4), (tiny_gpt2, text_batch, 4), (tiny_cnn, CASES["cnn"][1], 2)):
        base, x = make(), inputs()
        model = add_adapters(copy.deepcopy(base), bottleneck=8)
        wrapped = [m for m in model.modules() if isinstance(m, WithAdapter)]
        assert len(wrapped) == sites
        assert torch.equal(logits(model, x), logits(base, x))  # zero-init up-projection: the identity
        head = head_name(model)
        for n, p in model.named_parameters():
            assert p.requires_grad == (".adapter." in n or (make is not tiny_gpt2 and n.startswith(head + ".")))
    bert = add_adapters(tiny_bert(), bottleneck=8)
    assert isinstance(bert.bert.encoder.layer[0].attention.output.dense, WithAdapter)  # Houlsby's places
    resnet_like = add_adapters(tiny_cnn(), 4, after=r"^1$")
    assert [n for n, m in resnet_like.named_modules() if isinstance(m, WithAdapter)] == ["1"]


def test_bitfit_trains_exactly_the_biases_and_the_head():
    model = bitfit(tiny_bert())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {n for n, _ in model.named_parameters() if n.endswith(".bias") or n.startswith("classifier.")}
    assert trainable == expected and "classifier.weight" in trainable
    assert "bert.encoder.layer.0.attention.self.query.bias" in trainable
    assert "bert.encoder.layer.0.attention.self.query.weight" not in trainable


class TinyText(Dataset):
    task = "text-classification"
    classes = ["low", "high"]

    def __init__(self, n=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (n, 8), generator=g)
        self.lengths = torch.randint(3, 9, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i, : self.lengths[i]]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": int(ids[0] > 50)}

    def collate_fn(self, items):
        width = max(len(it["input_ids"]) for it in items)
        pad = lambda t: F.pad(t, (0, width - len(t)))
        return {"input_ids": torch.stack([pad(it["input_ids"]) for it in items]),
                "attention_mask": torch.stack([pad(it["attention_mask"]) for it in items]),
                "labels": torch.tensor([it["labels"] for it in items])}


def test_prompt_tuning_trains_only_the_prompt_and_head_and_fits_dict_batches():
    base = tiny_bert(num_labels=2)
    model = prompt_tuning(copy.deepcopy(base), n_tokens=5)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"bert.embeddings.soft_prompt.weight", "classifier.weight", "classifier.bias"}
    assert model.bert.embeddings.soft_prompt.weight.shape == (5, 32)
    # The hook puts the prompt in front and extends the mask: the same as doing it by hand.
    batch = text_batch()
    embeds = base.get_input_embeddings()(batch["input_ids"])
    prompt = model.bert.embeddings.soft_prompt.weight.expand(3, -1, -1)
    manual = base(inputs_embeds=torch.cat([prompt, embeds], 1),
                  attention_mask=torch.cat([torch.ones(3, 5, dtype=torch.long), batch["attention_mask"]], 1)).logits
    torch.testing.assert_close(logits(model, batch), manual)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = model.bert.embeddings.soft_prompt.weight.clone()
    history = fit(model, TinyText(), TinyText(seed=1), epochs=2, lr=1e-2, batch_size=8, progress=False)
    assert history.info["path"] == "full" and len(history.epochs) == 2
    assert not torch.equal(before, model.bert.embeddings.soft_prompt.weight)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    with pytest.raises(TypeError, match="Hugging Face"):
        prompt_tuning(tiny_cnn())


def test_lora_fits_with_ft_fit_and_only_lora_and_head_move():
    model = add_lora(tiny_bert(num_labels=2), r=4)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    fit(model, TinyText(), epochs=2, lr=1e-2, batch_size=8, progress=False)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert any(m.lora_B.weight.abs().sum() > 0 for m in lora_modules(model).values())
