"""``facevox voice train-gan``: the waveform GAN (WaveGAN) that ``facevox invert`` inverts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _train_gan(args: argparse.Namespace) -> None:
    from facevox.config import load_config
    from facevox.tasks.voice.wavegan_config import WaveGANConfig
    from facevox.tasks.voice.wavegan_train import train_gan

    cfg = load_config(WaveGANConfig, args.recipe or "voice/wavegan", args.overrides)
    if args.device:
        cfg.train.device = args.device
    result = train_gan(cfg, args.corpus, Path(args.out), resume=not args.restart)
    print(f"model: {result['model']}  ({result['steps']} steps in {result['train_seconds']:.0f} s)")
    print(f"samples: {result['samples']}  (invert it: facevox invert eval --generator wavegan:{result['model']})")


def add_gan_commands(sub: argparse._SubParsersAction, add_set: Callable) -> None:
    """Add the waveform GAN's commands to ``facevox voice``."""
    p = sub.add_parser("train-gan", help="train a WaveGAN on 1 s crops of a folder of audio",
                       description="Train a WaveGAN (z -> 16384 samples at 16 kHz) on random crops of the audio "
                                   "files under CORPUS; the generator is saved in OUT/model, sample WAVs in "
                                   "OUT/samples.")
    p.add_argument("corpus", metavar="CORPUS", help="folder of audio files (searched recursively)")
    p.add_argument("--out", default="runs/wavegan", help="run folder; the generator is saved in OUT/model")
    p.add_argument("--recipe", help="YAML recipe file or built-in name (default: wavegan)")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    add_set(p)
    p.set_defaults(handler=_train_gan)
