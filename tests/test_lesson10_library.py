"""What lesson 10 relies on from the library, checked on tiny models in seconds.

- fit interrupted by a callback saves the completed epochs, and the same call resumes them with the
  same step losses and bit-identical weights (the lesson's resume widget overlays the two Histories);
- the images a dataset gives are the raw scans scaled to [0, 1], resized bilinearly (antialiased) and
  normalised with the card's mean and std: what the lesson's inference function does by hand;
- an exported model keeps its metadata and its outputs whichever mode the model was in.
"""
import copy

import torch
from helpers import blobs
from torch import nn

import ftkit as ft


class StopAfter:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, history, model):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def test_an_interrupted_fit_resumes_with_the_same_steps_and_weights(tmp_path):
    train = blobs()
    run = dict(epochs=4, lr=1e-2, batch_size=16, progress=False, live=False, seed=3)
    model = mlp()
    unbroken = ft.fit(copy.deepcopy(model), train, **run)
    whole = copy.deepcopy(model)
    ft.fit(whole, train, **run)
    first = copy.deepcopy(model)
    stopped = ft.fit(first, train, checkpoint_dir=tmp_path, callbacks=[StopAfter(2)], **run)
    assert stopped.info["interrupted"] and len(stopped.epochs) == 2
    assert ft.checkpoint_info(tmp_path / "last.safetensors")["state"]["epoch"] == 2
    resumed = copy.deepcopy(model)
    history = ft.fit(resumed, train, checkpoint_dir=tmp_path, **run)
    assert history.info["resumed_from"] == 2
    assert [s["loss"] for s in history.steps] == [s["loss"] for s in unbroken.steps]
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), whole.state_dict().values()))


def test_the_inference_function_s_preparation_is_the_dataset_s():
    model = ft.load_model("glyph-resnet", num_classes=10)
    data = ft.load_dataset("digits", model, seed=0)
    card = ft.get_card("glyph-resnet")
    raw = data.test.inputs[:20]  # uint8 8x8 scans
    x = raw.float().div(255).unsqueeze(1)
    x = nn.functional.interpolate(x, size=card.input_size[1:], mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(card.mean).view(1, -1, 1, 1)) / torch.tensor(card.std).view(1, -1, 1, 1)
    expected = torch.stack([data.test[i][0] for i in range(20)])
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)


def test_an_exported_model_is_the_eval_mode_model_with_its_metadata(tmp_path):
    model = mlp().train()
    x = torch.randn(5, 6)
    meta = {"classes": ["a", "b", "c"], "mean": [0.1], "std": [0.2], "size": [8, 8]}
    for name in ("m.onnx", "m.pt2"):
        run = ft.load_exported(ft.export_model(model, x, tmp_path / name, metadata=meta), trusted=True)
        assert run.metadata == meta and model.training
        with torch.no_grad():
            torch.testing.assert_close(run(x), copy.deepcopy(model).eval()(x), rtol=1e-4, atol=1e-5)
