"""The bottom layer: what every other layer uses, and which imports nothing else of ftkit.

- ``util``: cache folders, name suggestions ("did you mean ...?"), plain tables, the
  network probe, handing freed memory back to the system;
- ``io``: files written atomically (checkpoints, adapters, results);
- ``device``: device choice, mixed precision, seeding, memory figures;
- ``batches``: the batch rules (loader, forward, loss, what a mean loss averages over);
- ``history``: the ``History`` record of a run and what "best" means;
- ``schedules``: learning-rate schedules as formulas.

May import: nothing of ftkit.
"""
__version__ = "0.1.0"
