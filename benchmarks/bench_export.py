"""ONNX export of each model family: parity with torch and torch vs onnxruntime speed on the CPU.

For each model (speaker embedders with their in-model fbank/spectrogram front end, face embedders,
the GAN-face detector) a model folder is made with random weights, exported with ``facevox export``'s
:func:`~facevox.export.export_model`, and timed on one input and on a batch of 32 (median of
``--repeats`` runs after a warm-up)::

    python benchmarks/bench_export.py                 # the widths below (a few minutes on 2 cores)
    python benchmarks/bench_export.py --quick         # tiny widths, batch 4, one run: does it run?

Widths (full run): speaker ecapa_tdnn channels 512 (default), xvector channels 512 (default),
resnet34_thin base_width 32 (default), voice_encoder (Resemblyzer, default), siamese_cnn (default);
face mobilefacenet, iresnet18 and sphere20 at width 32 (default 64), 112x112; fakeface resnet18 width 64
at 128x128 (the seed's resnet50 at 256x256 is slower but exports the same way). Speaker inputs are 2 s
at 16 kHz. Results: ``OUT/results.md`` and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine_header

import facevox
from facevox.export import OnnxModel, export_model
from facevox.fileio import atomic_write_json, atomic_write_text

WAVE = 32000  # 2 s at 16 kHz


def families(quick: bool) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(family, label, registered name, kwargs, extra.json) of each benchmarked model."""
    def sp(backbone: str, kw: dict[str, Any], tiny: dict[str, Any], features: str = "fbank") -> dict[str, Any]:
        return {"backbone": backbone, "features": features, "backbone_kwargs": tiny if quick else kw}

    speaker = [("ecapa_tdnn", sp("ecapa_tdnn", {}, {"channels": 16, "embed_dim": 8, "mfa_channels": 48})),
               ("xvector", sp("xvector", {}, {"channels": 16, "embed_dim": 8})),
               ("resnet34_thin", sp("resnet34_thin", {}, {"base_width": 4, "embed_dim": 8})),
               ("voice_encoder", sp("voice_encoder", {}, {}, "resemblyzer_mel")),
               ("siamese_cnn", {**sp("siamese_cnn", {}, {"width": 0.125, "embed_dim": 8}, "spectrogram")})]
    size = 32 if quick else 112
    width = 4 if quick else 32
    face = [(n, {"embed_dim": 16 if quick else 512, "input_size": (size, size), "width": width})
            for n in ("mobilefacenet", "iresnet18", "sphere20")]
    fake_size = 32 if quick else 128
    rows = [("speaker", label, "speaker_siamese" if label == "siamese_cnn" else "speaker_embedder", kw,
             {"kind": "embedding"}) for label, kw in speaker]
    rows += [("face", n, n, kw, {"task": "face", "input_size": [size, size], "flip": False}) for n, kw in face]
    rows.append(("fakeface", "resnet18", "resnet18", {"num_classes": 1, "width": 8 if quick else 64},
                 {"task": "fakeface", "load_size": fake_size}))
    if quick:  # one model a family, and the LSTM whose time axis is fixed
        rows = [r for r in rows if r[1] in ("xvector", "voice_encoder", "mobilefacenet", "resnet18")]
    return rows


def median_seconds(fn, x: np.ndarray, repeats: int) -> float:
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_one(root: Path, family: str, label: str, name: str, kwargs: dict[str, Any], extra: dict[str, Any],
              batch: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    card = facevox.ModelCard(task={"speaker": "speaker verification", "face": "face verification",
                                   "fakeface": "GAN-generated face detection"}[family], data="random", licence="MIT")
    folder = facevox.save_model(root / label, facevox.create_model(name, **kwargs), card=card, extra=extra)
    t = time.perf_counter()
    side = export_model(folder, root / f"{label}.onnx", "onnx", quiet=True)
    export_s = time.perf_counter() - t
    model = facevox.load_model(folder)
    runner = OnnxModel(root / f"{label}.onnx")
    shape = [1, side["input"]["shape"][1] if family != "speaker" else WAVE, *side["input"]["shape"][2:]]
    if family == "speaker" and side["input"]["time"] == "fixed":
        shape[1] = side["input"]["fixed_samples"]
    rng = np.random.default_rng(0)

    def torch_fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    row: dict[str, Any] = {"family": family, "model": label, "kwargs": kwargs, "input": shape[1:],
                           "time_axis": side["input"].get("time", "-"), "export_s": export_s,
                           "max_abs_diff_export": side["max_abs_diff"], "opset": side["opset"]}
    for n in (1, batch):
        x = (rng.standard_normal([n, *shape[1:]]) * 0.1 if family == "speaker" else rng.random([n, *shape[1:]]))
        x = x.astype(np.float32)
        ref = torch_fn(x)
        row[f"max_abs_diff_b{n}"] = float(np.abs(runner(x) - ref).max())
        row[f"max_abs_output_b{n}"] = float(np.abs(ref).max())
        row[f"torch_ms_b{n}"] = 1000 * median_seconds(torch_fn, x, repeats)
        row[f"onnx_ms_b{n}"] = 1000 * median_seconds(runner, x, repeats)
    return row


def table(rows: list[dict[str, Any]], batch: int) -> str:
    head = ["family", "model", "input", "time axis", "max abs diff", "max abs output", "torch ms (1)", "onnx ms (1)",
            f"torch ms ({batch})", f"onnx ms ({batch})", "export s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        diff = max(r["max_abs_diff_export"], r["max_abs_diff_b1"], r[f"max_abs_diff_b{batch}"])
        out = r.get(f"max_abs_output_b{batch}", float("nan"))
        lines.append(f"| {r['family']} | {r['model']} | {'x'.join(map(str, r['input']))} | {r['time_axis']} | "
                     f"{diff:.2g} | {out:.3g} | {r['torch_ms_b1']:.1f} | {r['onnx_ms_b1']:.1f} | "
                     f"{r[f'torch_ms_b{batch}']:.1f} | {r[f'onnx_ms_b{batch}']:.1f} | {r['export_s']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths, batch 4, one run (checks that it runs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--out", default="runs/bench-export", help="folder of results.md and results.json")
    args = parser.parse_args()
    batch, repeats = (4, 1) if args.quick else (32, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in families(args.quick):
            print(f"{spec[0]} {spec[1]} ...", file=sys.stderr, flush=True)
            rows.append(bench_one(Path(tmp), *spec, batch=batch, repeats=repeats))
    header = machine_header()
    text = "\n".join([f"# ONNX export: parity and CPU speed ({'quick' if args.quick else 'full'})", "",
                      f"{header['machine']}; {header['torch']}; onnxruntime {__import__('onnxruntime').__version__}; "
                      f"{header['date']}. Median of {repeats} run(s); speaker inputs 2 s at 16 kHz.", "",
                      table(rows, batch), ""])
    print(text)
    out = Path(args.out)
    atomic_write_text(out / "results.md", text)
    atomic_write_json(out / "results.json", {**header, "quick": args.quick, "batch": batch, "repeats": repeats,
                                             "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
