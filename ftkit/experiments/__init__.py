"""Experiments: recipes compared over seeds, and what a fine-tuned network has become.

- ``strategies``: ``Strategy`` (a recipe: what to freeze, how to train) and the ready-made ones;
- ``compare``: ``compare``, ``data_efficiency``, ``sweep``;
- ``results``: ``ResultTable`` and the on-disk result cache;
- ``analysis``: forgetting, weight drift, representation similarity, the generalisation gap;
- ``features``: the features a head reads, and nearest-mean accuracy.

A new ready-made strategy is a function in ``strategies`` returning a ``Strategy``.

May import: every layer below (``core``, ``models``, ``data``, ``tuning``, ``viz``, ``train``).
"""
