"""Synthetic voices: the MelGAN vocoder, the generated-speech detector and the waveform GAN to invert.

Three models, three settings classes; :func:`recipe_config` says which one a built-in recipe of
``src/facevox/recipes/voice/`` is for.
"""

from __future__ import annotations

RECIPE_MODELS = {"melgan": "vocoder", "melgan_cpu": "vocoder", "lcnn": "detector", "speech_spectral": "detector",
                 "wavegan": "wavegan"}


def recipe_config(name: str) -> type:
    """The settings class of the built-in voice recipe ``name`` (e.g. ``melgan_cpu``)."""
    model = RECIPE_MODELS[name]
    if model == "vocoder":
        from facevox.tasks.voice.vocoder_config import VocoderConfig

        return VocoderConfig
    if model == "detector":
        from facevox.tasks.voice.detector_config import DetectorConfig

        return DetectorConfig
    from facevox.tasks.voice.wavegan_config import WaveGANConfig

    return WaveGANConfig
