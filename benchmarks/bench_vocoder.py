"""Vocoder quality and speed: MelGAN (a trained model folder) against Griffin-Lim on held-out speech.

On ``--utterances`` test-other recordings (``--per-speaker`` from each speaker folder, first
``--seconds`` of each), each vocoder resynthesises the wave from its log-mel frames; the table gives
mel-cepstral distortion (:mod:`facevox.audio.quality`), PESQ-wb, STOI, the multi-resolution STFT
distance and the real-time factor (vocoding time / audio time, one utterance at a time, fp32 and bf16
autocast). The seed's claim (MelGAN > 2x faster than real time on a CPU) is checked on the paper's
full-size generator (4.26 M parameters; speed does not depend on the weights, so random ones are used
when no full-size model is given) as well as on the trained one::

    python benchmarks/bench_vocoder.py --model runs/melgan_cpu/model        # ~5 min on 2 cores
    python benchmarks/bench_vocoder.py --model runs/melgan_cpu/model --quick  # 3 utterances

Results: OUT/results.md and OUT/results.json (default OUT: runs/bench_vocoder).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine_header

from facevox.audio.io import list_audio_files, load_audio
from facevox.audio.mel import MelSpec
from facevox.audio.quality import quality
from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.registry import create_model
from facevox.tasks.voice.vocode import MelGANVocoder, load_vocoder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "librispeech" / "test-other"


def utterances(root: Path, per_speaker: int, limit: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    files = list_audio_files(root)
    by_speaker: dict[str, list[Path]] = {}
    for f in files:
        by_speaker.setdefault(f.relative_to(root).parts[0], []).append(f)
    picked = [f for spk in sorted(by_speaker) for f in sorted(by_speaker[spk])[:per_speaker]][:limit]
    return [(str(f.relative_to(root)), load_audio(f)[: int(seconds * 16000)]) for f in picked]


def score(vocoder: Any, clips: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    rows = []
    for _, wave in clips:
        rows.append(quality(wave, vocoder.resynthesise(wave)))
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def rtf(vocoder: Any, clips: list[tuple[str, np.ndarray]], repeats: int) -> float:
    """Median over ``repeats`` of (total vocoding time / total audio time), mels computed beforehand."""
    mels = [(vocoder.mel(w), len(w)) for _, w in clips]
    vocoder.vocode(*mels[0])  # warm-up
    audio = sum(n for _, n in mels) / 16000
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for mel, n in mels:
            vocoder.vocode(mel, n)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / audio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="MelGAN model folder (facevox voice train-vocoder OUT/model)")
    ap.add_argument("--data", type=Path, default=DATA, help="held-out speech: <speaker>/*.flac (test-other)")
    ap.add_argument("--utterances", type=int, default=30)
    ap.add_argument("--per-speaker", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0, help="first seconds of each utterance")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_vocoder"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    n = 3 if args.quick else args.utterances
    clips = utterances(args.data, args.per_speaker, n, args.seconds)
    print(f"{len(clips)} utterances, {sum(len(w) for _, w in clips) / 16000:.0f} s of audio", file=sys.stderr)

    melgan = load_vocoder(args.model, device="cpu")
    extra_steps = "?"
    try:
        import json

        extra_steps = json.loads((Path(args.model) / "extra.json").read_text())["train_steps"]
    except (OSError, KeyError, ValueError):
        pass
    full = MelGANVocoder(create_model("melgan_generator"), MelSpec(), torch.device("cpu"))
    systems: list[tuple[str, Any, bool]] = [
        ("Griffin-Lim (60 iterations, fast GL)", load_vocoder("griffinlim"), True),
        (f"MelGAN, trained here ({sum(p.numel() for p in melgan.generator.parameters()) / 1e6:.2f} M, "
         f"{extra_steps} steps)", melgan, True),
        ("MelGAN, paper size (4.26 M, random weights: speed only)", full, False),
    ]
    rows = []
    for label, voc, scored in systems:
        row: dict[str, Any] = {"system": label}
        if scored:
            row.update(score(voc, clips))
        row["rtf_fp32"] = rtf(voc, clips[:5], args.repeats)
        if isinstance(voc, MelGANVocoder):
            voc.amp = torch.bfloat16
            row["rtf_bf16"] = rtf(voc, clips[:5], args.repeats)
            voc.amp = None
        rows.append(row)
        print(row, file=sys.stderr)

    head = machine_header()
    lines = [f"Vocoders on {len(clips)} held-out test-other utterances (first {args.seconds:g} s each, "
             f"{args.per_speaker} per speaker); {head['machine']}, {head['torch']}, {head['date']}.", "",
             "| vocoder | MCD (dB) | PESQ-wb | STOI | MR-STFT distance | RTF fp32 | x real time fp32 | RTF bf16 |",
             "|---|---|---|---|---|---|---|---|"]

    def f(v: Any, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, float) else "-"

    for r in rows:
        lines.append(f"| {r['system']} | {f(r.get('mcd_db'), '.2f')} | {f(r.get('pesq_wb'), '.2f')} | "
                     f"{f(r.get('stoi'), '.3f')} | {f(r.get('stft_distance'), '.3f')} | {r['rtf_fp32']:.3f} | "
                     f"{1 / r['rtf_fp32']:.1f} | {f(r.get('rtf_bf16'), '.3f')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out / "results.md", text)
    atomic_write_json(args.out / "results.json", {"machine": head, "rows": rows, "utterances": [c[0] for c in clips]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
