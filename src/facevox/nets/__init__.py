"""Backbones, one file per family; importing this package registers them all by name."""

from facevox.nets import alexnet_pair, dcgan, ecapa, mlp, resnet, resnet_speaker, speaker, spectral, tdnn, voice_encoder  # noqa: F401
