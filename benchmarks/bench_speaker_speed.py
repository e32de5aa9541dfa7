"""Speaker speed, side by side in one run: embedding real-time factor against Resemblyzer's, and
training throughput in fp32 and bf16.

    python benchmarks/bench_speaker_speed.py --model runs/bench-speaker/ecapa_mmp/model

- Single file: each of the ``--files`` test-other utterances embedded on its own, as
  ``facevox speaker verify`` does (decoded audio in memory, so decoding is not timed).
  Real-time factor = seconds of compute / seconds of audio (lower is faster).
- Batch: 3-second segments of the same files, 32 at a time.
- Training: crops per second through the shared Trainer on train-clean-100 with the model's
  own recipe settings (augmentation included), fp32 against bf16 autocast: the Trainer's
  running average over ``--steps`` + 3 optimiser steps each.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from facevox.audio.features import fixed_windows
from facevox.audio.io import list_audio_files, load_audio
from facevox.checkpoint import read_model_folder
from facevox.fileio import atomic_write_text
from facevox.tasks.speaker.scoring import WaveEmbedder

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours(model: torch.nn.Module, waves: list[np.ndarray], segments: np.ndarray, precision: str) -> dict:
    embed = WaveEmbedder(model, precision=precision)
    embed(waves[0])  # warm-up

    @torch.no_grad()
    def batch() -> None:
        for i in range(0, len(segments), 32):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                model(torch.from_numpy(segments[i : i + 32]))

    return {"single": best_of(lambda: [embed(w) for w in waves]), "batch": best_of(batch)}


def resemblyzer(waves: list[np.ndarray], segments: np.ndarray) -> dict:
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram

    enc = VoiceEncoder("cpu", verbose=False)
    enc.embed_utterance(waves[0])

    @torch.no_grad()
    def batch() -> None:
        for i in range(0, len(segments), 32):
            mels = np.stack([wav_to_mel_spectrogram(s) for s in segments[i : i + 32]])
            enc(torch.from_numpy(mels))

    return {"single": best_of(lambda: [enc.embed_utterance(w) for w in waves]), "batch": best_of(batch)}


def training_throughput(model_dir: Path, data: Path, steps: int) -> dict:
    from facevox.config import load_config
    from facevox.tasks.speaker.config import SpeakerConfig
    from facevox.tasks.speaker.train import train_speaker

    out = {}
    for precision in ("fp32", "bf16"):
        cfg = load_config(SpeakerConfig, str(model_dir / "config.yaml"), [
            f"data.train={data}", f"train.max_steps={steps + 3}", f"train.precision={precision}",
            "train.progress=false", f"train.log_every={steps + 3}", "data.calib_speakers=0"])
        run = ROOT / "runs" / "bench-speed" / precision
        train_speaker(cfg, run, resume=False)
        rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
        # samples_per_s counts items; class-balanced items hold data.per_speaker crops each
        items = rows[-1]["samples_per_s"] * max(1, cfg.data.per_speaker)
        out[precision] = items
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a speaker model folder")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "librispeech")
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-speaker" / "speed.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    files = list_audio_files(args.data / "test-other")[: args.files]
    waves = [load_audio(f, SR) for f in files]
    audio_s = sum(len(w) for w in waves) / SR
    segments = np.concatenate([fixed_windows(w, 3 * SR, 3 * SR) for w in waves]).astype(np.float32)
    seg_s = len(segments) * 3.0
    model = read_model_folder(args.model).model.eval()

    result: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
                    "files": len(files), "audio_seconds": audio_s, "segments": len(segments)}
    rows = {f"facevox {args.model.parent.name} ({p})": ours(model, waves, segments, p) for p in ("fp32", "bf16")}
    try:
        rows["resemblyzer (as shipped)"] = resemblyzer(waves, segments)
    except ImportError:
        print("resemblyzer is not installed (make setup): skipping it")
    result["rtf"] = {k: {"single": v["single"] / audio_s, "batch": v["batch"] / seg_s} for k, v in rows.items()}
    result["train_crops_per_s"] = training_throughput(args.model, args.data / "train-clean-100", args.steps)
    atomic_write_text(args.out, json.dumps(result, indent=2))

    print(f"{len(files)} files, {audio_s:.0f} s of audio; batch: {len(segments)} segments of 3 s, 32 at a time")
    print("| embedder | RTF single file | RTF batch of 32 |")
    print("|---|---:|---:|")
    for k, v in result["rtf"].items():
        print(f"| {k} | {v['single']:.4f} | {v['batch']:.4f} |")
    t = result["train_crops_per_s"]
    print(f"\ntraining: {t['fp32']:.1f} crops/s fp32, {t['bf16']:.1f} crops/s bf16 ({t['bf16'] / t['fp32']:.2f}x)")


if __name__ == "__main__":
    main()
