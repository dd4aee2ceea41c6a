"""Deterministic hashed bag-of-words embeddings.

Texts that share words get a high cosine similarity, which is all a vector index needs to rank
documents in tests and the demo, with no model weights and identical vectors on every run.
"""

from __future__ import annotations

import hashlib
import math
import re

DIMENSIONS = 384

_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "with", "you", "your"]
)


def tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOPWORDS]


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """An L2-normalised vector; each word adds +-1 to one hashed slot (signed to keep unrelated texts
    near cosine 0). A text with no content words maps to a fixed unit vector rather than zeros."""
    vector = [0.0] * dimensions
    for token in tokens(text) or [""]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimensions
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:  # every word cancelled out in a shared slot
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]
