"""Real transfer, measured: the pre-trained MiniLM learns BBC News topics from 8 articles each.

This is the kit's central claim, so it is tested on the real offline model and data: the
same architecture, the same 40 articles and the same recipe, once from the pre-trained
weights and once from random ones. (About a minute on a 2-core CPU.)
"""
import ftkit as ft


def test_pretrained_minilm_beats_scratch_on_8_bbc_articles_per_class():
    data = ft.load_dataset("bbc-news", "minilm-l6", seed=0)
    train = ft.few_shot(data.train, per_class=8, seed=0)
    held_out = data.test.subset(range(300))
    assert len(train) == 40 and len(held_out) == 300
    assert not set(train.indices) & set(held_out.indices)

    accuracy = {}
    for pretrained in (True, False):
        model = ft.load_model("minilm-l6", num_classes=5, pretrained=pretrained)
        history = ft.fit(model, train, epochs=10, lr=1e-4, batch_size=8, seed=0, progress=False)
        assert history.info["path"] == "full"  # the whole network trains
        accuracy[pretrained] = ft.evaluate(model, held_out)["accuracy"]

    assert accuracy[True] >= 0.85, accuracy
    assert accuracy[False] < 0.50, accuracy
