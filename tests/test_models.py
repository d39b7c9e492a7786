"""Model catalogue, loading code paths (offline, against files in the caches), heads and layer groups."""
import os
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import ftkit as ft
from ftkit.models.catalogue import _REGISTRY

TORCHVISION = [name for name, card in _REGISTRY.items() if card.source == "torchvision"]


def _tiny_bert_dir(path: Path, classification: bool = False) -> Path:
    """A real (tiny, random) BERT written with save_pretrained, plus a word-piece vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "the a cat dog sat on mat ran fast".split()
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(1)
    model = (BertForSequenceClassification(config) if classification else BertModel(config))
    model.save_pretrained(path)
    return path


def _group_order_ok(model) -> list:
    """Group index of each parameter in registration order (input -> output for these models)."""
    index = ft.models.groups.group_of(model)
    return [index[name] for name, _ in model.named_parameters()]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_groups_cover_every_parameter_once_in_order(name):
    model = ft.load_model(name, num_classes=7, pretrained=False)
    groups = ft.layer_groups(model)
    names = [n for g in groups for n in g.names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(names) == len(set(names))
    order = _group_order_ok(model)
    assert order == sorted(order), "groups must run from input to output"
    assert len(groups) >= 4
    head = model.get_submodule(ft.head_name(model))
    assert groups[-1].params == list(head.parameters())
    assert head.out_features == 7 and model.ftkit_card.num_outputs == 7


def test_tiny_bert_groups_and_head(tmp_path):
    model = ft.load_model(str(_tiny_bert_dir(tmp_path / "bert")), num_classes=3)
    groups = ft.layer_groups(model)
    assert [g.name for g in groups] == ["embeddings", "block0", "block1", "block2", "final", "head"]
    names = [n for g in groups for n in g.names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters()) and len(names) == len(set(names))
    assert groups[-1].names == ["classifier.weight", "classifier.bias"]
    assert model.classifier.out_features == 3 and model.config.num_labels == 3


def test_fallback_groups_are_top_level_children():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
    groups = ft.layer_groups(model)
    assert [g.name for g in groups] == ["0", "2", "3"]
    assert sum(g.numel for g in groups) == sum(p.numel() for p in model.parameters())


def test_tied_weights_are_counted_once():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    groups = ft.layer_groups(model)
    assert [g.name for g in groups][:2] == ["embeddings", "block0"]
    ids = [id(p) for g in groups for p in g.params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_torchvision_loading_reads_the_cached_weights_file():
    """The real torchvision path: the weights file is placed where torch.hub's cache looks."""
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    reference = torchvision.models.resnet18()
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), target)
    try:
        assert "resnet18" in ft.offline_models()
        model = ft.load_model("resnet18")  # pre-trained, 1000 classes kept
        assert torch.equal(model.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
        assert model.fc.out_features == 1000 and model.ftkit_card.pretrained
        model = ft.load_model("resnet18", num_classes=4)
        assert torch.equal(model.conv1.weight, reference.conv1.weight)
        assert model.fc.out_features == 4
    finally:
        target.unlink()


def test_inception_loads_without_its_auxiliary_head():
    weights = torchvision.models.Inception_V3_Weights.IMAGENET1K_V1
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), target)
    try:
        model = ft.load_model("inception_v3", num_classes=3)
        assert model.AuxLogits is None
        assert torch.equal(model.Mixed_7c.branch1x1.conv.weight, reference.Mixed_7c.branch1x1.conv.weight)
        model.train()
        assert model(torch.randn(2, 3, 299, 299)).shape == (2, 3)  # one output, no aux tuple
    finally:
        target.unlink()


def test_missing_torchvision_weights_raise_a_clear_error(monkeypatch):
    def no_network(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(ft.PretrainedUnavailableError, match="minilm-l6") as info:
        ft.load_model("resnet18", num_classes=2)
    assert "pretrained=False" in str(info.value)


def test_huggingface_loading_from_the_hub_cache_by_id(tmp_path):
    """The real transformers path: a model laid out in the hub cache, loaded by its id, offline."""
    hub = Path(os.environ["HF_HOME"]) / "hub" / "models--ftkit-tests--tiny-bert"
    commit = "0123456789abcdef0123456789abcdef01234567"
    _tiny_bert_dir(hub / "snapshots" / commit)
    (hub / "refs").mkdir(parents=True, exist_ok=True)
    (hub / "refs" / "main").write_text(commit)
    encoder = ft.load_model("ftkit-tests/tiny-bert")
    assert type(encoder).__name__ == "BertModel"
    model = ft.load_model("ftkit-tests/tiny-bert", num_classes=2)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert torch.equal(model.bert.encoder.layer[1].output.dense.weight, encoder.encoder.layer[1].output.dense.weight)
    tokens = ft.load_tokenizer(model)("the cat sat")["input_ids"]
    assert len(tokens) == 5  # [CLS] the cat sat [SEP]
    with pytest.raises(ft.PretrainedUnavailableError, match="minilm-l6"):
        ft.load_model("ftkit-tests/not-in-cache", num_classes=2)


def test_huggingface_scratch_has_same_architecture_other_weights(tmp_path):
    path = str(_tiny_bert_dir(tmp_path / "bert"))
    pre = ft.load_model(path, num_classes=2)
    scratch = ft.load_model(path, num_classes=2, pretrained=False)
    assert [n for n, _ in pre.named_parameters()] == [n for n, _ in scratch.named_parameters()]
    assert not torch.equal(pre.bert.encoder.layer[0].output.dense.weight,
                           scratch.bert.encoder.layer[0].output.dense.weight)
    assert scratch.ftkit_card.pretrained is False


def test_minilm_is_really_pretrained():
    """Paraphrases land closer together than unrelated sentences: the embeddings carry meaning."""
    model = ft.load_model("minilm-l6").eval()
    tok = ft.load_tokenizer(model)
    sentences = ["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                 "The stock market fell sharply today."]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    para, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert para > unrelated + 0.3, (para, unrelated)
    scratch = ft.load_model("minilm-l6", pretrained=False).eval()
    with torch.no_grad():
        hidden = scratch(**batch).last_hidden_state
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert float(emb[0] @ emb[1]) - float(emb[0] @ emb[2]) < para - unrelated


def test_minilm_classifier_groups():
    model = ft.load_model("minilm-l6", num_classes=5)
    names = [g.name for g in ft.layer_groups(model)]
    assert names == ["embeddings"] + [f"block{i}" for i in range(6)] + ["final", "head"]
    assert model.classifier.out_features == 5
    assert "minilm-l6" in ft.offline_models()


def test_regression_head():
    model = ft.load_model("resnet18", num_classes=1, pretrained=False, task="regression")
    assert model.fc.out_features == 1 and model.ftkit_card.task == "regression"
    model = ft.load_model("resnet18", pretrained=False, task="regression")
    assert model.fc.out_features == 1


def test_replace_head_on_a_user_model():
    model = torchvision.models.resnet18()
    old = model.layer4[1].conv2.weight.clone()
    assert ft.replace_head(model, 3) is model
    assert model.fc.out_features == 3 and torch.equal(model.layer4[1].conv2.weight, old)
    conv_head = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 10, 1))
    ft.replace_head(conv_head, 4)
    assert conv_head[2].out_channels == 4
    with pytest.raises(TypeError, match="nn.Linear"):
        ft.replace_head(nn.Sequential(nn.Linear(2, 2), nn.Conv2d(2, 2, 3)), 2)


def test_image_size_change():
    cnn = ft.load_model("resnet18", num_classes=2, pretrained=False, image_size=64)
    assert cnn.ftkit_card.input_size == (3, 64, 64)
    assert cnn(torch.randn(1, 3, 64, 64)).shape == (1, 2)
    vit = ft.load_model("vit_b_16", num_classes=2, pretrained=False, image_size=128)
    assert vit(torch.randn(1, 3, 128, 128)).shape == (1, 2)


def test_image_size_change_resamples_a_timm_style_vits_position_embeddings():
    base = ft.load_model("glyph-vit")
    with pytest.raises(RuntimeError):  # one position embedding per patch of the 8 x 8 grid: 64 x 64 has 16 x 16
        base(torch.zeros(1, 1, 64, 64))
    vit = ft.load_model("glyph-vit", num_classes=3, image_size=64)
    assert vit.pos_embed.shape == (1, 1 + 16 * 16, 64) and vit.ftkit_card.input_size == (1, 64, 64)
    assert vit(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
    assert torch.equal(vit.pos_embed[:, 0], base.pos_embed[:, 0])  # the class token's embedding is kept
    same = ft.load_model("glyph-vit", image_size=32)  # the pre-training size: nothing changes
    assert torch.allclose(same.pos_embed, base.pos_embed, atol=1e-5)
    assert ft.load_dataset("digits", vit).train[0][0].shape == (1, 64, 64)  # data follow the card
    with pytest.raises(ValueError, match="multiple of the ViT's patch size"):
        ft.load_model("glyph-vit", image_size=30)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(KeyError, match="resnet18"):
        ft.load_model("resnt18")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            ft.load_model("resnet18", num_classes=bad, pretrained=False)
    with pytest.raises(ValueError, match="task"):
        ft.load_model("resnet18", task="segmentation", pretrained=False)
    with pytest.raises(ValueError, match="causal"):
        ft.load_model("gpt2", num_classes=3, pretrained=False)
    with pytest.raises(TypeError, match="replace_head"):
        ft.load_model(nn.Linear(2, 2))


def test_list_models_marks_offline_models():
    table = ft.list_models()
    rows = {r["name"]: r for r in table.rows}
    assert set(TORCHVISION) <= set(rows) and rows["minilm-l6"]["offline"] is True
    assert rows["vit_b_16"]["offline"] is False  # nothing in this test's torch cache
    assert "minilm-l6" in str(table) and "<table>" in table._repr_html_()
    generative = ft.list_models(task="causal-lm").rows
    assert {"gpt2", "distilgpt2"} <= {r["name"] for r in generative}
    assert {r["task"] for r in generative} == {"causal-lm"} and len(generative) < len(table)


def test_causal_lm_folder_loads_as_a_generative_model(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32)).save_pretrained(tmp_path)
    model = ft.load_model(str(tmp_path))
    assert type(model).__name__ == "GPT2LMHeadModel" and model.ftkit_card.task == "causal-lm"
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 50)
    classifier = ft.load_model(str(tmp_path), num_classes=3)
    assert classifier.ftkit_card.task == "text-classification" and classifier.score.out_features == 3
