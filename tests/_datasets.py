"""Datasets for the DataLoader tests. They live in a module of their own so that workers started
with the "spawn" method can import them (a class defined inside a test function cannot be)."""

from __future__ import annotations

import os

import torch


class FrameDataset(torch.utils.data.Dataset):
    """Item ``k``: ``(index, frame, pid)`` for the ``k``-th of ``indices``, read from ``decoder``.

    The decoder is created in the parent process; DataLoader workers receive it by fork or by
    pickling (spawn), and it must reopen itself there.
    """

    def __init__(self, decoder, indices):
        self.decoder = decoder
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        i = self.indices[k]
        return i, self.decoder[i], os.getpid()
