"""``facevox voice train-vocoder`` and ``facevox voice vocode``: the MelGAN vocoder and Griffin-Lim."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from facevox.config import load_config, ranged_arg


def _train(args: argparse.Namespace) -> None:
    from facevox.tasks.voice.vocoder_config import VocoderConfig
    from facevox.tasks.voice.vocoder_train import train_vocoder

    overrides = list(args.overrides) + ([f"data.train={args.corpus}"] if args.corpus else [])
    cfg = load_config(VocoderConfig, args.recipe or "voice/melgan", overrides)
    result = train_vocoder(cfg, Path(args.out), resume=not args.restart, licence=args.licence)
    print(f"model: {result['model']}  ({result['steps']} steps in {result['train_seconds']:.0f} s); "
          f"samples: {Path(args.out) / 'samples'}")


def _vocode(args: argparse.Namespace) -> None:
    from facevox.tasks.voice.vocode import vocode_files

    s = vocode_files(args.model, args.inputs, args.out, score=not args.no_score, perceptual=not args.no_pesq,
                     device=args.device, precision=args.precision, max_files=args.max_files,
                     min_seconds=args.min_seconds)
    line = (f"{s['files']} file(s) -> {args.out}  ({s['vocoder']}, {s['times_real_time']:.1f}x real time, "
            f"RTF {s['rtf']:.3f})")
    scores = [f"{k} {s[k]:.3f}" for k in ("mcd_db", "stft_distance", "pesq_wb", "stoi") if k in s]
    print(line + ("\n" + "  ".join(scores) if scores else ""))


def add_vocoder_commands(sub: argparse._SubParsersAction, add_set: Callable) -> None:
    """Add the vocoder's commands to ``facevox voice``."""
    p = sub.add_parser("train-vocoder", help="train a MelGAN vocoder (log-mel -> wave) on a folder of speech",
                       description="Train MelGAN (generator + multi-scale discriminator, feature matching) through "
                       "the shared trainer; OUT/model is the generator, OUT/samples holds resynthesised clips.")
    p.add_argument("corpus", nargs="?", help="folder of <speaker>/**/audio files or a manifest (sets data.train)")
    p.add_argument("--recipe", help="recipe file or built-in name: melgan (the paper's, default) or melgan_cpu")
    p.add_argument("--out", default="runs/vocoder", help="run folder; the generator is saved in OUT/model")
    p.add_argument("--licence", default="unknown", help="licence of the training data, for the model card")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    add_set(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("vocode", help="resynthesise audio (or vocode log-mel .npy files) with MelGAN or Griffin-Lim",
                       description="Each audio input goes through its log-mel frames and back, and is scored "
                       "against the original (MCD, multi-resolution STFT distance, PESQ-wb, STOI); each .npy input "
                       "(n_mels, F) is vocoded. Writes OUT/*.wav, OUT/vocode.csv and OUT/summary.json (RTF).")
    p.add_argument("inputs", nargs="+", metavar="MEL_OR_WAV", help="audio files, folders of them, or .npy log-mels")
    p.add_argument("--model", required=True, help="vocoder model folder (train-vocoder OUT/model) or griffinlim")
    p.add_argument("--out", default="runs/vocode")
    p.add_argument("--max-files", type=ranged_arg(int, ge=0), default=0, help="only the first N inputs (0: all)")
    p.add_argument("--min-seconds", type=ranged_arg(float, ge=0.02), default=0.25,
                   help="shorter audio is a one-line error (default 0.25)")
    p.add_argument("--no-score", action="store_true", help="do not compare with the originals")
    p.add_argument("--no-pesq", action="store_true", help="leave out PESQ and STOI (they need facevox[attacks])")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="MelGAN's forward pass: fp32 (default), bf16 autocast, or auto (bf16 where native)")
    p.set_defaults(handler=_vocode)
