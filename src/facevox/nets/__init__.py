"""Backbones, one file per family; importing this package registers them all by name."""

from facevox.nets import mlp  # noqa: F401
