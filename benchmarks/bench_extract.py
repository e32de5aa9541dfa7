"""Embedding extraction speed, side by side in one run, on the same test-other files (decoding included):

    python benchmarks/bench_extract.py --model runs/bench-speaker/ecapa_mmp/model
    python benchmarks/bench_extract.py                 # an untrained ECAPA-TDNN (speed does not depend on weights)

- one file at a time: what ``speaker eval`` did before the store (decode, then ``WaveEmbedder``
  per file, in the main process);
- batched: :func:`facevox.verification.embed_paths` with ``--workers`` DataLoader workers decoding,
  chunks of equal length batched (``--batch-size``), for whole utterances and for 3 s windows
  (``scoring.window_seconds: 3``, where every chunk has one length and batches fill);
- Resemblyzer's own ``embed_utterance`` (its preprocessing included), skipped when not installed.

Real-time factor = wall seconds / seconds of audio (lower is faster). The batched embeddings are
checked against the one-file ones (largest difference printed; the tests hold it to 1e-4).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_header

from facevox.audio.io import list_audio_files, load_audio
from facevox.tasks.speaker.scoring import WaveEmbedder, extractor
from facevox.verification import embed_paths

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def load_model(folder: Path | None) -> torch.nn.Module:
    if folder is not None:
        from facevox.checkpoint import read_model_folder

        return read_model_folder(folder).model.eval()
    import facevox

    torch.manual_seed(0)
    return facevox.create_model("speaker_embedder", backbone="ecapa_tdnn").eval()


def one_by_one(files: list[Path], embed: WaveEmbedder) -> np.ndarray:
    return np.stack([embed(load_audio(f, SR, 0.5)) for f in files])


def resemblyzer_each(files: list[Path]) -> float | None:
    try:
        from facevox.tasks.speaker.evaluate import ResemblyzerEmbedder

        embed = ResemblyzerEmbedder()
    except Exception as err:  # not installed: FacevoxError naming the extra
        print(f"resemblyzer skipped ({err})")
        return None
    embed(load_audio(files[0], SR))  # warm-up
    return timed(lambda: [embed(load_audio(f, SR, 0.5)) for f in files])[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="a speaker model folder (default: an untrained ECAPA-TDNN)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "librispeech" / "test-other")
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    files = list_audio_files(args.data)[: args.files]
    audio_s = sum(len(load_audio(f, SR)) for f in files) / SR
    model = load_model(args.model)
    rows: dict[str, float] = {}
    worst = 0.0
    for window in (0.0, 3.0):
        mode = "whole utterances" if window == 0 else f"{window:g} s windows"
        embed = WaveEmbedder(model, window_seconds=window, precision=args.precision, device=args.device)
        embed(load_audio(files[0], SR))  # warm-up
        seconds, single = timed(lambda e=embed: one_by_one(files, e))
        rows[f"facevox one file at a time, {mode}"] = seconds
        for workers in args.workers:
            ex = extractor(embed, workers=workers, batch_size=args.batch_size, progress=False)
            seconds, (emb, ok, _) = timed(lambda ex=ex: embed_paths(files, ex))
            rows[f"facevox batched, {workers} workers, {mode}"] = seconds
            worst = max(worst, float(np.abs(emb - single).max()))
    resemblyzer = resemblyzer_each(files)
    if resemblyzer is not None:
        rows["resemblyzer embed_utterance, one file at a time"] = resemblyzer
    head = machine_header()
    print(f"{len(files)} files of {args.data}, {audio_s:.0f} s of audio; {head['machine']}; {head['torch']}")
    print(f"largest batched vs one-file difference: {worst:.2e}")
    print("| extraction | seconds | real-time factor |")
    print("|---|---:|---:|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {seconds / audio_s:.4f} |")
    if args.out:
        args.out.write_text(json.dumps({**head, "files": len(files), "audio_seconds": audio_s, "max_diff": worst,
                                        "seconds": rows}, indent=2))


if __name__ == "__main__":
    main()
