"""Argument checks the clip and audio window samplers share."""

from __future__ import annotations

import numbers

import torch

__all__ = ["positive_int", "random_generator"]


def positive_int(name: str, value) -> int:
    """``value`` as an int.

    Raises:
        ValueError: ``value`` is not an int > 0 (a bool is not), naming the argument ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def random_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """The generator a sampler draws with: a new one seeded with ``seed``, else ``generator``
    (None: torch's global generator).

    Raises:
        ValueError: both ``seed`` and ``generator`` are given.
    """
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator, not both")
    if seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator
