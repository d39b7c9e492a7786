"""Tuning: what trains and how it is held.

- ``freeze``: freezing and unfreezing by layer group or name, BatchNorm modes, ``trainable_summary``;
- ``regularize``: dropout, L1, L2-SP, EWC, rehearsal: penalties that ``fit`` adds to the loss;
- ``lora``: LoRA layers, merging, adapters saved and loaded in peft's format;
- ``adapt``: adapters, BitFit, soft prompts, and the bridge to peft.

A new regulariser is an object with ``penalty(model) -> tensor`` (see ``regularize``); a new
parameter-efficient method wraps or adds modules here and marks what trains.

May import: ``ftkit.core``, ``ftkit.models``, ``ftkit.data``.
"""
