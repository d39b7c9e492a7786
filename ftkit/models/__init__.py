"""Models: what a pre-trained model is (its card) and where it comes from.

- ``cards``: ``ModelCard`` (input size, normalisation or tokenizer, head, layer groups) and the
  error raised when pre-trained weights cannot be had;
- ``catalogue``: ``load_model``, ``replace_head``, ``list_models``, ``register_model``;
- ``sources``: the loaders: torchvision, Hugging Face (ids and folders), the offline MiniLM;
- ``zoo`` and ``nets``: ftkit's own shipped models (their recipes live apart, in ``ftkit.zoo``);
- ``groups``: layer groups (input -> output, head last) and the head's name.

A new model source goes in ``sources`` (a card and a loader function), registered in its table.

May import: ``ftkit.core``.
"""
