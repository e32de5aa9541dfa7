"""``facevox voice ...``: the vocoder (train-vocoder, vocode), the detector and the waveform GAN."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from facevox.tasks.voice.detector_commands import add_detector_commands
from facevox.tasks.voice.gan_commands import add_gan_commands
from facevox.tasks.voice.vocoder_commands import add_vocoder_commands


def add_commands(sub: argparse._SubParsersAction, add_set: Callable) -> None:
    add_vocoder_commands(sub, add_set)
    add_detector_commands(sub, add_set)
    add_gan_commands(sub, add_set)
