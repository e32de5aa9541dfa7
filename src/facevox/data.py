"""Reproducible batches: every sample gets its own seed, so a resumed run sees the same data.

The training loop draws batches from :class:`EpochBatches`, which yields lists of
``(index, seed)`` keys. A :class:`SeededDataset` turns the seed into a
``numpy.random.Generator`` for its random crops and augmentations, so the randomness of a
sample depends only on (run seed, epoch, position), not on worker processes or on where a run
was interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

Key = tuple[int, int]


class SeededDataset(Dataset):
    """Base class for datasets whose items use randomness; subclasses implement :meth:`get`."""

    def __len__(self) -> int:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def get(self, index: int, rng: np.random.Generator) -> Any:
        """Return item ``index``, drawing all randomness from ``rng``."""
        raise NotImplementedError

    def __getitem__(self, key: int | Key) -> Any:
        index, seed = key if isinstance(key, tuple) else (key, index_seed(key))
        return self.get(int(index), np.random.default_rng(seed))


class PlainDataset(Dataset):
    """Adapter for an ordinary dataset: the per-sample seed is dropped."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | Key) -> Any:
        return self.dataset[key[0] if isinstance(key, tuple) else key]


def index_seed(index: int, base: int = 0) -> int:
    """A fixed seed for evaluation-time items (no epoch involved)."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0])


class EpochBatches:
    """Batch sampler: a seeded shuffle per epoch, split across data-parallel ranks.

    Batch ``b`` of epoch ``e`` is the same global batch in every run with the same seed.
    ``rank``/``world`` take the rank's contiguous slice of each global batch, so the union over
    ranks equals the single-process batch. ``start`` skips batches already done (resume).
    ``weights`` switches to sampling with replacement in proportion to the weights (balanced
    sampling of imbalanced classes).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world, self.start = rank, world, start
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)

    def __len__(self) -> int:
        full = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return max(0, full - self.start)

    def _order(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=gen)
        return torch.randperm(self.n, generator=gen) if self.shuffle else torch.arange(self.n)

    def __iter__(self) -> Iterator[list[Key]]:
        order = self._order().tolist()
        seeds = np.random.SeedSequence([self.seed, self.epoch, 7]).generate_state(self.n, dtype=np.uint64)
        per_rank = self.batch_size // self.world
        for b in range(self.start, self.start + len(self)):
            lo = b * self.batch_size
            positions = list(range(lo, min(lo + self.batch_size, self.n)))
            if self.world > 1:
                positions = positions[self.rank * per_rank : (self.rank + 1) * per_rank]
            yield [(order[p], int(seeds[p] >> np.uint64(1))) for p in positions]


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
