"""Export: ONNX (run by ONNX Runtime) and torch.export files give the model's outputs back; bad input is refused."""
import pytest
import torch
from torch import nn

import ftkit as ft
from ftkit.core.errors import CheckpointError
from ftkit.train import export as export_module


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_an_exported_model_gives_the_model_s_outputs_for_any_batch_size(tmp_path, suffix):
    model = small_cnn().train()
    x = torch.randn(4, 1, 8, 8)
    path = ft.export_model(model, x, tmp_path / f"m{suffix}", metadata={"classes": ["a", "b", "c"], "mean": [0.5]})
    assert model.training  # left in the mode it had
    run = ft.load_exported(path, trusted=True)
    assert run.metadata == {"classes": ["a", "b", "c"], "mean": [0.5]}
    model.eval()
    for batch in (1, 4, 7):  # the batch size is free in the file
        other = torch.randn(batch, 1, 8, 8)
        with torch.no_grad():
            expected = model(other)
        got = run(other)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)  # eval mode: no dropout
    torch.testing.assert_close(run(other.numpy().astype("float64")), expected, rtol=1e-4, atol=1e-5)  # NumPy in
    assert [p.name for p in tmp_path.iterdir()] == [f"m{suffix}"]  # one file, no temporary left


def test_a_batch_of_one_is_enough_to_export(tmp_path):
    model = small_cnn().eval()
    run = ft.load_exported(ft.export_model(model, torch.randn(1, 1, 8, 8), tmp_path / "one.onnx"))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(run(x), model(x).detach(), rtol=1e-4, atol=1e-5)


def test_glyph_resnet_exports_to_onnx_with_the_same_predictions(tmp_path):
    model = ft.load_model("glyph-resnet", num_classes=10).eval()
    data = ft.load_dataset("digits", model, seed=0)
    x = torch.stack([data.test[i][0] for i in range(64)])
    run = ft.load_exported(ft.export_model(model, x[:8], tmp_path / "glyph.onnx"))
    with torch.no_grad():
        expected = model(x)
    assert (run(x) - expected).abs().max() < 1e-4
    assert torch.equal(run(x).argmax(1), expected.argmax(1))


def test_a_hugging_face_text_model_exports_its_logits_with_free_batch_and_length(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=32, num_labels=3)).eval()
    batch = {"input_ids": torch.randint(0, 50, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long),
             "labels": torch.tensor([0, 1])}
    run = ft.load_exported(ft.export_model(model, batch, tmp_path / "text.onnx"))
    assert run.input_names == ["input_ids", "attention_mask"]
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 5:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(run(input_ids=ids, attention_mask=mask), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(run(ids, mask), expected, rtol=1e-4, atol=1e-5)


def test_bad_paths_examples_and_files_raise_errors_that_say_what_to_do(tmp_path):
    model = small_cnn()
    x = torch.randn(2, 1, 8, 8)
    path = ft.export_model(model, x, tmp_path / "m.onnx")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ft.export_model(model, x, path)
    ft.export_model(model, x, path, overwrite=True)
    with pytest.raises(ValueError, match=r"\.onnx .*\.pt2"):
        ft.export_model(model, x, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="ends in .pt2"):
        ft.export_model(model, x, tmp_path / "m.pt2", format="onnx")
    with pytest.raises(ValueError, match="could not run on the example"):
        ft.export_model(model, torch.randn(2, 3, 8, 8), tmp_path / "wrong.onnx")  # 3 channels, not 1
    with pytest.raises(TypeError, match="batch"):
        ft.export_model(model, "an image", tmp_path / "wrong.onnx")
    with pytest.raises(TypeError, match="nn.Module"):
        ft.export_model(x, model, tmp_path / "wrong.onnx")
    with pytest.raises(TypeError, match="JSON values only"):
        ft.export_model(model, x, tmp_path / "meta.onnx", metadata={"f": object()})
    assert not (tmp_path / "wrong.onnx").exists() and not (tmp_path / "meta.onnx").exists()
    with pytest.raises(FileNotFoundError, match="export_model"):
        ft.load_exported(tmp_path / "none.onnx")
    torch.save(model, tmp_path / "pickled.onnx")
    with pytest.raises(CheckpointError, match="pickle"):
        ft.load_exported(tmp_path / "pickled.onnx")
    (tmp_path / "cut.onnx").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable ONNX"):
        ft.load_exported(tmp_path / "cut.onnx")
    run = ft.load_exported(path)
    with pytest.raises(TypeError, match="1 input"):
        run(x, x)
    with pytest.raises(TypeError, match="tensor or a NumPy array"):
        run([[1.0]])


def test_a_torch_export_file_loads_only_when_trusted(tmp_path):
    path = ft.export_model(small_cnn(), torch.randn(2, 1, 8, 8), tmp_path / "m.pt2")
    with pytest.raises(CheckpointError, match="trusted=True"):
        ft.load_exported(path)
    assert ft.load_exported(path, trusted=True).format == "torch"


def test_missing_onnx_packages_are_named_with_the_pip_command(tmp_path, monkeypatch):
    real = export_module.importlib.util.find_spec
    monkeypatch.setattr(export_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ImportError, match="pip install onnx onnxscript onnxruntime") as err:
        ft.export_model(small_cnn(), torch.randn(2, 1, 8, 8), tmp_path / "m.onnx")
    assert "onnxruntime" in str(err.value) and ".pt2" in str(err.value)
    assert not (tmp_path / "m.onnx").exists()
