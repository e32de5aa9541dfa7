"""Backbones, one file per family; importing this package registers them all by name."""

from facevox.nets import (  # noqa: F401
    alexnet_pair,
    dcgan,
    ecapa,
    iresnet,
    mlp,
    mobilefacenet,
    resnet,
    resnet_speaker,
    speaker,
    spectral,
    sphere_cnn,
    tdnn,
    voice_encoder,
)
