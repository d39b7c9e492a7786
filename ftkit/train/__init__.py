"""Training and measuring: ``fit``, its settings, and everything it is built from.

- ``config``: ``TrainConfig``, every setting of a run, checked;
- ``loop``: ``fit``, one readable loop;
- ``optim``: optimizers, parameter groups (discriminative LRs, no decay on 1-D params), schedulers;
- ``checkpoint``: safetensors checkpoints and exact resume;
- ``feature_cache``: a frozen backbone's features computed once and reused;
- ``evaluate``: ``evaluate`` and ``predict``;
- ``lr_find``: the learning-rate range test.

May import: ``ftkit.core``, ``ftkit.models``, ``ftkit.data``, ``ftkit.tuning``, ``ftkit.viz``.
"""
