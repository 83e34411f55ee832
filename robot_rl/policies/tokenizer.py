"""A deterministic word-level tokenizer whose vocabulary lives in the policy config.

Nothing is downloaded: the vocabulary is built from the instruction strings a policy is trained on
and saved in ``config.json``, so a checkpoint carries everything needed to tokenize again.
Words are lower-cased runs of letters and digits; unknown words map to ``<unk>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

PAD, UNK, BOS = "<pad>", "<unk>", "<bos>"
SPECIALS = (PAD, UNK, BOS)
PAD_ID, UNK_ID, BOS_ID = 0, 1, 2

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words of ``text``: lower-cased runs of ``[a-z0-9]``."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str]) -> tuple[str, ...]:
    """Special tokens followed by the sorted words of ``texts`` (sorted, so order-independent)."""
    found = {w for t in texts for w in words(t)}
    return SPECIALS + tuple(sorted(found))


def tokenize(texts: Sequence[str], vocab: Sequence[str], max_len: int) -> torch.Tensor:
    """Token ids of ``texts``. Shape: ``(len(texts), max_len)`` int64.

    Each row is ``<bos>`` followed by the word ids, truncated to ``max_len`` and padded with
    ``<pad>`` (id 0). The leading ``<bos>`` keeps every row non-empty for attention pooling.
    """
    index = {w: i for i, w in enumerate(vocab)}
    out = torch.full((len(texts), max_len), PAD_ID, dtype=torch.int64)
    for row, text in enumerate(texts):
        ids = [BOS_ID] + [index.get(w, UNK_ID) for w in words(text)]
        ids = ids[:max_len]
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out
