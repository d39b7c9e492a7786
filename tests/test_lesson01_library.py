"""What lesson 01 relies on from the library, checked here rather than claimed in the lesson."""
import math

import pytest
import torch

import ftkit as ft

OFFLINE = ["minilm-l6", "bbc-gpt", "glyph-vit", "glyph-resnet"]


@pytest.mark.parametrize("name", OFFLINE)
def test_the_pickers_groups_hold_every_parameter_of_an_offline_model_exactly_once(name):
    net = ft.ModelPicker().run(model=name)
    groups = ft.layer_groups(net)
    names = [n for g in groups for n in g.names]
    assert len(names) == len(set(names))
    assert sum(g.numel for g in groups) == sum(p.numel() for p in net.parameters())


def test_a_new_head_has_n_outputs_a_default_init_and_leaves_the_backbone_as_it_was():
    model = ft.load_model("glyph-resnet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ft.seed_everything(0)
    new = ft.replace_head(model, 10)
    head = ft.head_name(new)
    layer = new.get_submodule(head)
    assert layer.out_features == 10
    assert layer.weight.abs().max() <= 1 / math.sqrt(layer.in_features)  # PyTorch's Kaiming-uniform default
    for key, value in new.state_dict().items():
        if not key.startswith(head + "."):
            assert torch.equal(value, before[key]), key


def test_a_regression_head_has_one_output_and_fit_trains_it_with_mse():
    regressor = ft.load_model("glyph-resnet", task="regression")
    digits = ft.load_dataset("digits", regressor, seed=0)
    history = ft.fit(regressor, ft.few_shot(digits.train, per_class=2, seed=0), epochs=1, batch_size=20,
                     progress=False, seed=0)
    assert regressor.fc.out_features == 1 and history.info["task"] == "regression"
    batch = next(iter(torch.utils.data.DataLoader(digits.test, batch_size=8)))
    report = ft.evaluate(regressor, digits.test.subset(range(8)))
    expected = torch.nn.functional.mse_loss(ft.predict(regressor, digits.test.subset(range(8))).outputs.reshape(-1),
                                            batch[1].float())
    assert report["mse"] == pytest.approx(expected.item(), rel=1e-4)
