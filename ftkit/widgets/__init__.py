"""Widgets: ipywidgets panels to explore fine-tuning by hand.

- ``base``: the ``Panel`` base (controls, Run and Stop, a live view, messages);
- ``panels``: ``FreezeExplorer`` and ``TrainPanel``;
- ``boards``: ``CompareBoard``, ``LoRAExplorer`` and ``ModelPicker``.

Panels call the library's functions; a new panel subclasses ``Panel`` and goes in ``panels``
or ``boards``.

May import: every layer below (``core`` ... ``experiments``).
"""
