"""Verification building blocks shared by the speaker and face tasks: an on-disk embedding store,
batched parallel extraction, and scoring at scale (cosine by index, AS-norm, top-k search)."""

from facevox.verification.extract import embed_paths, extract_images, extract_waves, extract_waves_each
from facevox.verification.scoring import as_norm_pairs, cohort_stats, cosine_pairs, index_pairs, top_k, unit
from facevox.verification.store import EmbeddingStore

__all__ = [
    "EmbeddingStore",
    "as_norm_pairs",
    "cohort_stats",
    "cosine_pairs",
    "embed_paths",
    "extract_images",
    "extract_waves",
    "extract_waves_each",
    "index_pairs",
    "top_k",
    "unit",
]
