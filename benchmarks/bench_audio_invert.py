"""Inverse mapping of an audio GAN (seed ch. 3, issue 17): WaveGAN on LibriSpeech, then optimisation,
the ResNet-18 encoder and the hybrid on generated and on real clips.

    python benchmarks/bench_audio_invert.py                      # everything (about 15 min on 2 free cores)
    python benchmarks/bench_audio_invert.py --gan-steps 2000     # a longer WaveGAN training
    python benchmarks/bench_audio_invert.py --out /tmp/bench-audio-smoke --gan-steps 2 --encoder-steps 2 \\
        --n 3 --n-real 3 --opt-steps 2 --hybrid-steps 1 --max-files 40                   # smoke run

1. WaveGAN (``src/facevox/recipes/voice/wavegan.yaml``: WGAN-GP, d = ``--d``) is trained with
   ``facevox voice train-gan``'s function on random 1 s crops of ``--corpus`` (LibriSpeech
   train-clean-100) for ``--gan-steps`` steps of 32 into ``OUT/wavegan`` unless it is there.
2. The encoder (``src/facevox/recipes/invert/encoder_wavegan.yaml``: a ResNet-18 of width 32 on the
   log-mel frames, z-loss + MR-STFT + log-mel L1) for ``--encoder-steps`` steps of 32 into
   ``OUT/encoder``, unless it is there.
3. The seed's table, through ``facevox invert eval``'s function: ``--n`` (50) clips drawn from
   z ~ N(0, I) (seed 0) and ``--n-real`` (50) real test-other clips (the centre 16384 samples of files
   of at least 1.1 s, spread evenly over the sorted list), each inverted by optimisation
   (``--opt-steps``, 200, as the seed), the encoder and the hybrid (``--hybrid-steps``, 50): MR-STFT
   distance, log-mel L1, SNR, latent error (generated clips), seconds for all clips and per clip.

Budget (2 cores; estimates from a 2-core machine busy with other jobs, so a free one is faster):
WaveGAN d=8 about 0.5 s per step (300 steps: 2.5 min), the encoder about 0.7 s per step (150
steps: 2 min), one Adam step on 50 clips about 0.8 s (200 + 50 steps on two sets: 7 min).
Results: ``OUT/results.md`` and ``OUT/results.json``; WAVs and reports under ``OUT/generated`` and
``OUT/real``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_header

from facevox.audio.io import list_audio_files
from facevox.config import load_config
from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.tasks.invert import evaluate as ev
from facevox.tasks.invert.config import InvertConfig
from facevox.tasks.invert.encoder import train_encoder
from facevox.tasks.speaker.datasets import header_seconds
from facevox.tasks.voice.wavegan_config import WaveGANConfig
from facevox.tasks.voice.wavegan_train import train_gan

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "librispeech"


def gan_stage(args: argparse.Namespace, out: Path) -> dict:
    model = out / "model"
    if not (model / "model.safetensors").is_file():
        cfg = load_config(WaveGANConfig, "voice/wavegan", args.gan_set)
        cfg.train.max_steps, cfg.model.d = args.gan_steps, args.d
        cfg.data.max_files = args.max_files
        cfg.data.crops_per_epoch = max(cfg.data.crops_per_epoch, cfg.train.batch_size)
        if args.device:
            cfg.train.device = args.device
        print(f"[wavegan] training {args.gan_steps} steps into {model}", flush=True)
        train_gan(cfg, args.corpus, out)
    else:
        print(f"[wavegan] already trained: {model}")
    return json.loads((model / "metrics.json").read_text())


def invert_config(args: argparse.Namespace, generator: Path) -> InvertConfig:
    cfg = load_config(InvertConfig, "invert/encoder_wavegan", args.set)
    cfg.generator.source = f"wavegan:{generator}"
    cfg.train.max_steps = args.encoder_steps
    cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(0, args.encoder_steps // 10))
    cfg.optim.steps, cfg.optim.hybrid_steps = args.opt_steps, args.hybrid_steps
    cfg.optim.log_every = 0
    if args.device:
        cfg.device = cfg.train.device = args.device
    return cfg


def encoder_stage(cfg: InvertConfig, out: Path) -> dict:
    model = out / "model"
    if not (model / "model.safetensors").is_file():
        print(f"[encoder] training {cfg.train.max_steps} steps of {cfg.train.batch_size} into {model}", flush=True)
        train_encoder(cfg, out)
    else:
        print(f"[encoder] already trained: {model}")
    return json.loads((model / "metrics.json").read_text())


def real_clips(root: Path, n: int, out: Path, min_seconds: float = 1.1) -> Path:
    """Copies of ``n`` files of at least ``min_seconds`` under ``root``, spread evenly over the sorted list."""
    files = list_audio_files(root)
    picked = [files[i] for i in np.linspace(0, len(files) - 1, min(len(files), 4 * n)).round().astype(int)]
    picked = [f for f in picked if header_seconds(f) >= min_seconds]
    picked = [picked[i] for i in np.linspace(0, len(picked) - 1, min(n, len(picked))).round().astype(int)]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in picked:
        shutil.copy(f, out / f.name)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-audio-invert"))
    p.add_argument("--corpus", type=Path, default=DATA / "train-clean-100")
    p.add_argument("--real", type=Path, default=DATA / "test-other")
    p.add_argument("--gan-steps", type=int, default=300, help="WaveGAN steps of 32 crops (default 300)")
    p.add_argument("--d", type=int, default=8, help="WaveGAN width (default 8; the recipe 16, the paper 64)")
    p.add_argument("--max-files", type=int, default=0, help="train on this many corpus files (0: all)")
    p.add_argument("--encoder-steps", type=int, default=150, help="encoder steps of 32 (default 150)")
    p.add_argument("--n", type=int, default=50, help="generated clips (default 50)")
    p.add_argument("--n-real", type=int, default=50, help="real test-other clips (default 50)")
    p.add_argument("--opt-steps", type=int, default=200)
    p.add_argument("--hybrid-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="", help="cpu, cuda ... (default: auto)")
    p.add_argument("--set", action="append", default=[], help="invert recipe override KEY=VALUE")
    p.add_argument("--gan-set", action="append", default=[], help="wavegan recipe override KEY=VALUE")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out
    t0 = time.perf_counter()
    gan = gan_stage(args, out / "wavegan")
    t_gan = time.perf_counter() - t0
    cfg = invert_config(args, out / "wavegan" / "model")
    enc = encoder_stage(cfg, out / "encoder")
    t_enc = time.perf_counter() - t0 - t_gan
    encoder = out / "encoder" / "model"
    docs = {}
    print(f"[eval] {args.n} generated clips", flush=True)
    docs["generated"] = ev.evaluate_inversion(cfg, out / "generated", encoder_path=encoder, n=args.n, seed=0)
    clips = real_clips(args.real, args.n_real, out / "real_clips")
    print(f"[eval] {args.n_real} real clips from {args.real}", flush=True)
    docs["real"] = ev.evaluate_inversion(cfg, out / "real", encoder_path=encoder, images=clips)
    total = time.perf_counter() - t0

    head = machine_header()
    lines = ["# Inverse mapping of an audio GAN (WaveGAN): optimisation, encoder, hybrid", "",
             f"{head['machine']}; {head['torch']}; {head['date']}. Total {total / 60:.1f} min "
             f"(WaveGAN {t_gan / 60:.1f} min, encoder {t_enc / 60:.1f} min).", "",
             f"WaveGAN: d={args.d}, {gan.get('steps')} steps of 32 (WGAN-GP) on {gan.get('files')} files of "
             f"{args.corpus.name}. Encoder: ResNet-18 (width {cfg.encoder.width}) on log-mel, {args.encoder_steps} "
             f"steps of {cfg.train.batch_size}; held-out latent error {enc['heldout_latent_error']:.3f} "
             f"({100 * enc['heldout_latent_error_rel']:.0f}% of |z|). Optimisation: Adam lr {cfg.optim.lr}, "
             f"sample MSE x {cfg.optim.pixel} + (MR-STFT + log-mel L1) x {cfg.optim.perceptual}.", ""]
    for name, doc in docs.items():
        lines += [f"## {name.capitalize()} clips: {doc['source']}", "", ev.markdown_table(
            doc["table"]["header"], doc["table"]["rows"]).rstrip(), ""]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(out / "results.md", text)
    atomic_write_json(out / "results.json", {"header": head, "args": {k: str(v) for k, v in vars(args).items()},
                                             "wavegan": gan, "encoder": enc, "seconds": {"total": total,
                                             "wavegan": t_gan, "encoder": t_enc},
                                             **{k: {"source": d["source"], "table": d["table"],
                                                    "methods": d["methods"]} for k, d in docs.items()}})
    print(f"results: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
