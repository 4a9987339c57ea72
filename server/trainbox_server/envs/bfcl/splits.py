"""Deterministic train/val/test splits of BFCL task ids, stratified by category.

Pure and standard-library only. The scheme (version ``SPLIT_VERSION``), applied to every category on its own:

1. take the category's task ids in the dataset's natural order (``multi_turn_base_0, _1, ..., _199``);
2. shuffle them with ``random.Random(f"{SPLIT_SEED}:{category}")`` — string seeds hash with SHA-512,
   so the order is the same on every machine, Python build and process;
3. cut the shuffled list at ``round(n * 0.8)`` and ``round(n * 0.9)``: train / val / test = 80/10/10 %;
4. each split lists its ids category by category (in the order the adapter lists its categories,
   ``bfcl.data.CATEGORIES``), each category's ids in natural order.

Every category therefore appears in every split in the same proportions, the splits are disjoint and
cover the whole category, and adding a category never moves another category's tasks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping

SPLIT_SEED = "trainbox-bfcl"
SPLIT_VERSION = 1
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}

_NUMBERS = re.compile(r"(\d+)")


def natural_key(task_id: str) -> list[object]:
    """Sort key that orders ``x_2`` before ``x_10`` (and ``live_simple_3-2-1`` by its numbers)."""
    return [int(p) if p.isdigit() else p for p in _NUMBERS.split(task_id)]


def split_category(category: str, task_ids: Iterable[str], seed: str = SPLIT_SEED) -> dict[str, list[str]]:
    """The train/val/test ids of one category (each list in natural order)."""
    ordered = sorted(task_ids, key=natural_key)
    shuffled = ordered[:]
    random.Random(f"{seed}:{category}").shuffle(shuffled)
    n = len(shuffled)
    train_end = round(n * SPLIT_FRACTIONS["train"])
    val_end = round(n * (SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"]))
    parts = {"train": shuffled[:train_end], "val": shuffled[train_end:val_end], "test": shuffled[val_end:]}
    return {split: sorted(ids, key=natural_key) for split, ids in parts.items()}


def split_ids(ids_by_category: Mapping[str, Iterable[str]], seed: str = SPLIT_SEED) -> dict[str, list[str]]:
    """All categories' ids per split, category by category in the mapping's order."""
    result: dict[str, list[str]] = {split: [] for split in SPLIT_FRACTIONS}
    for category, ids in ids_by_category.items():
        for split, part in split_category(category, ids, seed).items():
            result[split].extend(part)
    return result
