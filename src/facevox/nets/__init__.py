"""Backbones, one file per family; importing this package registers them all by name."""

from facevox.nets import alexnet_pair, ecapa, mlp, resnet_speaker, speaker, tdnn, voice_encoder  # noqa: F401
