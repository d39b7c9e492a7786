"""Data: labelled datasets prepared for a model, split into train / val / test.

- ``labeled``: ``LabeledDataset`` and ``Splits``, the split and few-shot rules;
- ``catalogue``: named datasets (``load_dataset``, ``list_datasets``, ``register_dataset``);
- ``files``: your own image folders and CSV files;
- ``transforms``: image transforms from a model card, augmentation presets, tokenization;
- ``glyphs``: characters rendered from matplotlib's fonts, with domain knobs;
- ``zoo_tasks``: the tasks the zoo's models were pre-trained on (for forgetting and transfer).

A new named dataset is a loader function registered in ``catalogue``.

May import: ``ftkit.core``, ``ftkit.models`` (a model's card says how to prepare its data).
"""
