"""Backbones, one file per family; importing this package registers them all by name."""

from facevox.nets import (  # noqa: F401
    alexnet_pair,
    dcgan,
    ecapa,
    iresnet,
    lcnn,
    melgan,
    mlp,
    mobilefacenet,
    resnet,
    resnet_speaker,
    speaker,
    spectral,
    speech_spectral,
    sphere_cnn,
    tdnn,
    voice_encoder,
    wavegan,
)
