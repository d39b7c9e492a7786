"""ftkit's errors: one family, each also the built-in error it is a kind of.

Every error ftkit raises on purpose is an ``FtkitError``, so ``except ft.FtkitError`` catches
exactly the mistakes ftkit recognised, and each subclass also derives from the matching
built-in (``ValueError``, ``KeyError``, ``RuntimeError`` ...), so code written against the
built-ins keeps working. A message says what was wrong, what was expected, and what to do.

| error | also a | raised when |
|---|---|---|
| ``FtkitError`` | ``Exception`` | (the family) |
| ``DataError`` | ``ValueError`` | data that does not fit the model or the task: raw texts, wrong channels, labels out of range |
| ``ConfigError`` | ``ValueError`` | a setting that cannot work: a learning rate <= 0, an unknown schedule |
| ``UnknownNameError`` | ``KeyError`` | a model, dataset or strategy name ftkit does not know (close names suggested) |
| ``NonFiniteLossError`` | ``FloatingPointError`` | training produced a NaN or infinite loss |
| ``DeviceMemoryError`` | ``MemoryError`` | the GPU ran out of memory (the message says what to try) |
| ``CheckpointError`` | ``RuntimeError`` | a checkpoint that cannot be read, or does not fit |
| ``PretrainedUnavailableError`` | ``RuntimeError`` | pre-trained weights that cannot be had (offline, not cached) |
| ``DataUnavailableError`` | ``RuntimeError`` | a dataset that cannot be had (offline, not cached) |

Example:
    >>> try:  # doctest: +SKIP
    ...     ft.fit(model, ft.load_dataset("bbc-news").train)     # raw texts, not tokenized
    ... except ft.DataError as err:
    ...     print(err)
"""
from __future__ import annotations


class FtkitError(Exception):
    """Something ftkit recognised as a mistake or an impossibility, with a message that says what to do."""


class DataError(FtkitError, ValueError):
    """The data does not fit the model or the task (raw inputs, wrong shape or channels, bad labels)."""


class ConfigError(FtkitError, ValueError):
    """A setting that cannot work (a learning rate <= 0, a batch size < 1, an unknown optimizer)."""


class UnknownNameError(FtkitError, KeyError):
    """A name ftkit does not know: a model, dataset, schedule, optimizer or strategy."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class NonFiniteLossError(FtkitError, FloatingPointError):
    """Training produced a NaN or infinite loss; the model is back at the weights it had when that epoch began.

    ``err.history`` holds the History of the run until then.
    """


class DeviceMemoryError(FtkitError, MemoryError):
    """The device ran out of memory during training; the model is back at the weights its epoch began with."""


class CheckpointError(FtkitError, RuntimeError):
    """A checkpoint could not be read, or does not fit the model or optimizer it is loaded into."""


class PretrainedUnavailableError(FtkitError, RuntimeError):
    """Pre-trained weights could not be had (usually: no network and nothing cached)."""


class DataUnavailableError(FtkitError, RuntimeError):
    """A dataset could not be had (usually: no network and nothing in the cache)."""
