"""Generated-speech detection on LibriSpeech: AP/EER per generator, cross-generator and re-encoding tables.

Real clips from ``train-clean-100`` speakers (train and val) and ``test-other`` speakers (test: held-out
speakers); fakes by Griffin-Lim, the procedural synthesiser and (``--vocoder``) a trained MelGAN::

    python benchmarks/bench_voice_detector.py                          # about 20 min on 2 cores
    python benchmarks/bench_voice_detector.py --vocoder runs/melgan/model
    python benchmarks/bench_voice_detector.py --max-clips 6 --epochs 1 --out runs/bench-voice-smoke  # smoke run

Tables: AP and EER per generator for each detector (LCNN and the spectral baseline, trained on every
generator); cross-generator (trained on all but one generator, tested on the held-out one); the
all-generator detectors on re-encoded test clips (MP3, Ogg Vorbis, 8 kHz and back). Results go to
``OUT/results.json`` and ``OUT/results.md``; the fakes are made once and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import machine_header

from facevox.config import load_config
from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.tasks.voice.detector_config import RECIPES, DetectorConfig
from facevox.tasks.voice.detector_eval import PERTURBATIONS, evaluate_voice
from facevox.tasks.voice.detector_train import train_detector
from facevox.tasks.voice.fakes import make_fakes

ROOT = Path(__file__).resolve().parent.parent


def train(detector: str, index: Path, out: Path, args: argparse.Namespace, generators: list[str]) -> dict:
    """Train (or reuse) one detector; its test metrics (every generator)."""
    sets = [f"data.source={index}", f"data.train_generators=[{','.join(generators)}]",
            f"train.num_workers={args.workers}", "train.progress=false", *args.set]
    if detector == "lcnn":
        sets.append(f"train.epochs={args.epochs}")
    if (out / "eval" / "metrics.json").is_file() and (out / "model" / "model.safetensors").is_file():
        print(f"[{out.name}] already trained")
    else:
        cfg = load_config(DetectorConfig, RECIPES[detector], sets)
        train_detector(cfg, out, resume=True, workers=args.workers)
    return json.loads((out / "eval" / "metrics.json").read_text())


def table(header: list[str], rows: list[list]) -> str:
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "librispeech")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-voice")
    p.add_argument("--vocoder", help="MelGAN model folder: adds the melgan generator")
    p.add_argument("--max-clips", type=int, default=150, help="real clips per corpus (train+val, and test)")
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--epochs", type=int, default=5, help="LCNN epochs")
    p.add_argument("--detectors", nargs="+", default=["lcnn", "spectral"], choices=list(RECIPES))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="recipe override for every detector (repeatable)")
    args = p.parse_args()
    train_dir, test_dir = args.data / "train-clean-100", args.data / "test-other"
    if not train_dir.is_dir() or not test_dir.is_dir():
        sys.exit(f"bench_voice_detector: need {train_dir} and {test_dir}")
    gens = ["griffinlim", "synth"] + (["melgan"] if args.vocoder else [])
    fakes = args.out / "fakes"
    t0 = time.perf_counter()
    if not (fakes / "index.csv").is_file():
        make_fakes(train_dir, fakes, generators=gens, vocoder=args.vocoder, clip_seconds=args.clip_seconds,
                   max_clips=args.max_clips, test_corpus=test_dir, fractions=(0.85, 0.15, 0.0), workers=args.workers)
    fake_seconds = time.perf_counter() - t0
    results: dict = {**machine_header(), "generators": gens, "max_clips": args.max_clips,
                     "clip_seconds": args.clip_seconds, "make_fakes_seconds": fake_seconds,
                     "all": {}, "cross": {}, "reencoded": {}}
    for det in args.detectors:
        t = time.perf_counter()
        results["all"][det] = train(det, fakes / "index.csv", args.out / f"{det}-all", args, gens)
        results["all"][det]["seconds"] = time.perf_counter() - t
        for held in gens:
            rest = [g for g in gens if g != held]
            m = train(det, fakes / "index.csv", args.out / f"{det}-without-{held}", args, rest)
            results["cross"].setdefault(det, {})[held] = m["per_generator"][held]
        ev = evaluate_voice(args.out / f"{det}-all" / "model", fakes / "index.csv", args.out / f"{det}-reencoded",
                            perturb=PERTURBATIONS, workers=args.workers)
        results["reencoded"][det] = ev["robustness"]
    results["total_seconds"] = time.perf_counter() - t0

    md = ["# Generated-speech detection (LibriSpeech: train-clean-100 speakers -> test-other speakers)", "",
          f"{results['machine']}, {results['torch']}, {results['date']}; {args.max_clips} real clips of "
          f"{args.clip_seconds:g} s per corpus, LCNN {args.epochs} epochs; total {results['total_seconds']:.0f} s", "",
          "## Trained on every generator: AP / EER per generator (its fakes vs the real test clips)", "",
          table(["detector", "AP all", "EER all", *[f"{g} AP" for g in gens], *[f"{g} EER" for g in gens]],
                [[d, m["average_precision"], m["eer"], *[m["per_generator"][g]["average_precision"] for g in gens],
                  *[m["per_generator"][g]["eer"] for g in gens]] for d, m in results["all"].items()]), "",
          "## Cross-generator: trained on the other generators, tested on the held-out one (AP / EER)", "",
          table(["detector", *[f"held-out {g}" for g in gens]],
                [[d, *[f"{r[g]['average_precision']:.3f} / {r[g]['eer']:.3f}" for g in gens]]
                 for d, r in results["cross"].items()]), "",
          "## Re-encoded test clips (all-generator detectors): AP / EER", "",
          table(["detector", "clean", *PERTURBATIONS],
                [[d, *[f"{r[k]['average_precision']:.3f} / {r[k]['eer']:.3f}" for k in ("none", *PERTURBATIONS)]]
                 for d, r in results["reencoded"].items()]), ""]
    text = "\n".join(md)
    atomic_write_json(args.out / "results.json", results)
    atomic_write_text(args.out / "results.md", text)
    print(text)


if __name__ == "__main__":
    main()
