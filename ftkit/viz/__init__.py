"""Pictures: matplotlib figures from Histories, result tables, models and data, and the live view.

- ``style``: the shared look (palette, labels, figure helpers, PNG encoding);
- ``plots``: learning curves, comparisons, data efficiency, the generalisation gap, LR schedules;
- ``model_plots``: confusion matrix, weight drift, LR finder, trainable parameters by group;
- ``data_plots``: example images and 2-D maps of features;
- ``live``: ``LiveView``, the curves of a run redrawn in a notebook while ``fit`` runs.

Every function takes plain data (a History, a table, a dict) and returns a Figure, so a new
plot goes in the module of what it draws.

May import: ``ftkit.core``, ``ftkit.models``, ``ftkit.data``, ``ftkit.tuning``.
"""
