"""Dataset over (text, label) examples, tokenized once; dynamic-padding collate; length-grouped batches."""
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from data.transform import BERTSentenceTransform


class Batch(NamedTuple):
    token_ids: torch.Tensor  # (B, T) int64, T = longest sequence in this batch
    valid_length: torch.Tensor  # (B,)
    segment_ids: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B,) int64 class ids, -1 where unknown (prediction); multi-label: (B, C) float32 multi-hot
    indices: torch.Tensor  # (B,) positions in the dataset, to restore order after length sorting

    def to(self, device, non_blocking=False):
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


class ClassificationDataset(Dataset):
    """Tokenizes everything at construction: epochs then cost no tokenizer time at all."""

    def __init__(self, texts: list[str], labels, transform: BERTSentenceTransform, texts_b=None):
        """`labels`: (N,) class ids, (N, C) multi-hot rows (data.build.label_ids), or None (unknown)."""
        encoded = transform.encode(list(texts), list(texts_b) if texts_b is not None else None)
        self.token_ids, self.segment_ids = encoded.token_ids, encoded.segment_ids
        self.valid_length = encoded.valid_length
        self.n_truncated = encoded.n_truncated
        labels = np.asarray(labels if labels is not None else [-1] * len(texts))
        # float multi-hot: what binary cross-entropy takes as its target
        self.labels = labels.astype(np.float32 if labels.ndim == 2 else np.int64, copy=False)
        self.pad_id = transform.tokenizer.pad_id

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return i

    def collate_step(self, micro_batches) -> list[Batch]:
        """For TrainingSteps: the index arrays of one optimizer step -> one Batch per micro-batch."""
        return [self.collate(indices) for indices in micro_batches]

    def collate(self, indices) -> Batch:
        """Pads to the longest sequence of this batch only (the tutorial pads everything to max_len)."""
        indices = np.asarray(indices)
        longest = int(self.valid_length[indices].max())
        token_ids = np.full((len(indices), longest), self.pad_id, dtype=np.int64)
        segment_ids = np.zeros((len(indices), longest), dtype=np.int64)
        for row, i in enumerate(indices):
            n = self.valid_length[i]
            token_ids[row, :n] = self.token_ids[i][:n]
            segment_ids[row, :n] = self.segment_ids[i][:n]
        return Batch(torch.from_numpy(token_ids), torch.from_numpy(self.valid_length[indices]),
                     torch.from_numpy(segment_ids), torch.from_numpy(self.labels[indices]),
                     torch.from_numpy(indices))


class LengthGroupedBatchSampler(Sampler):
    """Shuffled batches of similar-length sequences, so dynamic padding pads little.

    Each epoch: shuffle, cut into windows of `window_batches` batches, sort each window by length,
    split into batches, shuffle the batches. Randomness comes only from (seed, epoch), so an
    epoch's batch order can be rebuilt exactly (needed for resuming mid-epoch).
    With shuffle=False (evaluation) all sequences are sorted by length: fastest, order restored later.
    """

    def __init__(self, lengths, batch_size: int, shuffle: bool, seed: int = 0,
                 group_by_length: bool = True, window_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.group_by_length, self.window_batches = group_by_length, window_batches
        self.epoch, self.first_batch = 0, 0

    def set_epoch(self, epoch: int, first_batch: int = 0):
        """Selects the epoch's order; iteration starts at batch `first_batch` (exact mid-epoch resume)."""
        self.epoch, self.first_batch = epoch, first_batch

    def batches(self) -> list[np.ndarray]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable") if self.group_by_length else np.arange(n)
            return [order[i:i + bs] for i in range(0, n, bs)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        if not self.group_by_length:
            return [order[i:i + bs] for i in range(0, n, bs)]
        window = bs * self.window_batches
        batches = []
        for start in range(0, n, window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        return iter(self.batches()[self.first_batch:])

    def __len__(self):  # batches in a whole epoch
        return -(-len(self.lengths) // self.batch_size)


class TrainingSteps(Sampler):
    """One item per optimizer step: this process's equal share of the step's global batch, cut into
    `micro_batches` index arrays (gradient accumulation); the loader collates each into a Batch.

    Every process builds the same global batches from (seed, epoch) and takes its own slice, so the
    length grouping survives data parallelism. Shares are equal so that averaging gradients over
    processes averages over examples; a last partial batch too small to give every process
    `micro_batches` examples is dropped (only with several processes or accumulation).
    """

    def __init__(self, global_batches: LengthGroupedBatchSampler, num_shards: int = 1, shard: int = 0,
                 micro_batches: int = 1):
        self.global_batches, self.num_shards, self.shard = global_batches, num_shards, shard
        self.micro_batches, self.first_step = micro_batches, 0

    def set_epoch(self, epoch: int, first_step: int = 0):
        """Selects the epoch's order; iteration starts at step `first_step` (exact mid-epoch resume)."""
        self.global_batches.set_epoch(epoch)
        self.first_step = first_step

    def steps(self) -> list[list[np.ndarray]]:
        steps = []
        for batch in self.global_batches.batches():
            share = len(batch) // self.num_shards
            if share >= self.micro_batches:
                mine = batch[self.shard * share:(self.shard + 1) * share]
                steps.append(np.array_split(mine, self.micro_batches))
        return steps

    def __iter__(self):
        return iter(self.steps()[self.first_step:])

    def __len__(self):  # optimizer steps in a whole epoch; the same on every process
        n, batch_size = len(self.global_batches.lengths), self.global_batches.batch_size
        last = n % batch_size
        return n // batch_size + (last // self.num_shards >= self.micro_batches)
