"""GAN-face detection on real data: the README's tables and saliency figure.

Data: ``../shared/data/ffhq-vs-stylegan2`` (400 real FFHQ photos, 134 StyleGAN2 faces, 256 px),
one stratified split 70/10/20 with seed 0, written once to ``OUT/split.csv`` and shared by all
systems::

    python benchmarks/bench_fakeface.py                 # everything (about 40 min on 2 cores)
    python benchmarks/bench_fakeface.py --systems spectral resnet18
    python benchmarks/bench_fakeface.py --set train.max_steps=3 --out runs/bench-ff-smoke   # smoke run

Per system: test accuracy (threshold 0.5), AP, ROC-AUC and training time. Then, for the best
CNN: AP under perturbations, AP with the generator's watermark corner greyed out at test time,
the cross-generator check on 64x64 DCGAN faces (``gan-face-generate``, ``make setup``), the
best CNN fused with a pretrained face network (``fakeface fuse``: dlib's face recognition ResNet,
frozen, with a logistic regression on its descriptors), predict speed in fp32 and bf16, and the
saliency figure ``docs/figures/fakeface_saliency.jpg``.
Results go to ``OUT/results.json`` and ``OUT/results.md``; a trained system is not trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_header

from facevox.config import load_config
from facevox.fileio import atomic_write_text
from facevox.image.transforms import mask_region, resize_square
from facevox.metrics import detection_summary
from facevox.tasks.fakeface.config import FakefaceConfig
from facevox.tasks.fakeface.data import CLASSES, load_resized, read_split, split_for
from facevox.tasks.fakeface.evaluate import evaluate_detector
from facevox.tasks.fakeface.face_probe import fuse_detector
from facevox.tasks.fakeface.scoring import Detector
from facevox.tasks.fakeface.train import train_fakeface

ROOT = Path(__file__).resolve().parent.parent
WATERMARK = (0.75, 0.94, 1.0, 1.0)  # thispersondoesnotexist's "StyleGAN2 (Karras et al.)" text, bottom right
SYSTEMS = {  # name -> (recipe, overrides, label)
    "spectral": ("spectral.yaml", [], "spectral profile + logistic regression"),
    "resnet18": ("resnet18.yaml", [], "ResNet-18"),
    "resnet50": ("resnet50_seed.yaml", [], "ResNet-50 (seed recipe)"),
}


def run_system(name: str, args: argparse.Namespace, split: Path) -> dict:
    recipe, extra_set, label = SYSTEMS[name]
    out = args.out / name
    cfg = load_config(FakefaceConfig, f"fakeface/{recipe}",
                      [f"data.split={split}", *extra_set, *args.set])
    if (out / "model" / "model.safetensors").is_file() and (out / "eval" / "metrics.json").is_file():
        print(f"[{name}] already trained: {out / 'model'}")
        train_seconds = json.loads((out / "model" / "extra.json").read_text())["train_seconds"]
        test = json.loads((out / "eval" / "metrics.json").read_text())
    else:
        result = train_fakeface(cfg, out, licence="FFHQ CC BY-NC-SA 4.0; StyleGAN2 outputs")
        train_seconds, test = result["train_seconds"], result["test"]
    return {"system": name, "label": label, "train_seconds": train_seconds, "epochs": cfg.train.epochs,
            "accuracy": test["accuracy"], "average_precision": test["average_precision"], "roc_auc": test["roc_auc"],
            "model": str(out / "model")}


def test_images(split: Path, size: int) -> tuple[list[np.ndarray], np.ndarray]:
    arrays, items = load_resized(read_split(split)["test"], size, skip_bad=False)
    return arrays, np.array([it.label for it in items])


def scores_of(det: Detector, arrays: list[np.ndarray], y: np.ndarray) -> dict:
    return detection_summary(det.probs(arrays), y, det.threshold)


def watermark_check(model: Path, split: Path) -> dict:
    """The best model's test scores with the watermark corner greyed out in every test image."""
    det = Detector.load(str(model))
    arrays, y = test_images(split, det.load_size)
    return scores_of(det, [mask_region(a, WATERMARK) for a in arrays], y)


def cross_generator(model: Path, split: Path, n_fake: int, seed: int = 0) -> dict:
    """DCGAN faces (64x64) against the real test photos downscaled to 64x64."""
    from facevox.nets.dcgan import load_gan_face_generator

    g = load_gan_face_generator()
    with torch.no_grad():
        fakes = g(torch.randn(n_fake, 100, generator=torch.Generator().manual_seed(seed)))
    fakes = ((fakes.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    det = Detector.load(str(model))
    arrays, y = test_images(split, det.load_size)
    reals = [resize_square(a, 64) for a, label in zip(arrays, y, strict=True) if label == 0]
    images = reals + list(fakes)
    labels = np.array([0] * len(reals) + [1] * len(fakes))
    return {"n_real": len(reals), "n_fake": n_fake, **scores_of(det, images, labels)}


def predict_speed(model: Path, n: int = 128, batch: int = 32) -> dict:
    """Images per second of Detector.probs at 256 px (decoded images, resizing included)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n)]
    out = {}
    for precision in ("fp32", "bf16"):
        det = Detector.load(str(model), batch_size=batch, precision=precision)
        det.probs(images[:batch])  # warm-up
        t0 = time.perf_counter()
        det.probs(images)
        out[precision] = n / (time.perf_counter() - t0)
    return out


def saliency_figure(model: Path, split: Path, path: Path) -> Path:
    """Guided Backpropagation and Grad-CAM on the two most confidently right real and fake test images."""
    from facevox.explain.overlay import plot_saliency_grid
    from facevox.tasks.fakeface.saliency import saliency_maps

    det = Detector.load(str(model))
    arrays, y = test_images(split, det.load_size)
    p = det.probs(arrays)
    fake = [i for i in np.argsort(-p) if y[i] == 1][:2]
    real = [i for i in np.argsort(p) if y[i] == 0][:2]
    chosen = real + fake
    maps = saliency_maps(det.model, [arrays[i] for i in chosen], ("guided_backprop", "gradcam"),
                         ["fake"] * len(chosen))
    titles = [f"{CLASSES[y[i]]}, P(fake) {p[i]:.2f}; explaining the fake score" for i in chosen]
    return plot_saliency_grid([arrays[i] for i in chosen], maps, path, titles)


def write_results(res: dict, out: Path) -> None:
    atomic_write_text(out / "results.json", json.dumps(res, indent=2))
    h = res["machine"]
    lines = [f"Measured on {h['machine']} ({h['torch']}), {h['date']}; test split: "
             f"{res.get('n_test', '?')} images.", "",
             "| model | accuracy | AP | ROC-AUC | training time here |", "|---|---:|---:|---:|---:|"]
    for r in res["systems"]:
        t = f"{r['train_seconds']:.0f} s" if r["train_seconds"] < 120 else f"{r['train_seconds'] / 60:.1f} min"
        cells = (r["accuracy"], r["average_precision"], r["roc_auc"])
        lines.append(f"| {r['label']} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {t} |")
    if "robustness" in res:
        lines += ["", f"Robustness of {res['best']}:", "", "| test images | AP | ROC-AUC | accuracy |",
                  "|---|---:|---:|---:|"]
        for k, v in res["robustness"].items():
            lines.append(f"| {k} | {v['average_precision']:.3f} | {v['roc_auc']:.3f} | {v['accuracy']:.3f} |")
    if "watermark" in res:
        w = res["watermark"]
        lines += ["", f"{res['best']} with the watermark corner greyed out at test time: AP "
                      f"{w['average_precision']:.3f}, ROC-AUC {w['roc_auc']:.3f}, accuracy {w['accuracy']:.3f}."]
    if "cross_generator" in res:
        c = res["cross_generator"]
        lines += ["", f"Cross-generator ({res['best']}): {c['n_fake']} DCGAN faces vs {c['n_real']} real test "
                      f"photos at 64x64: AP {c['average_precision']:.3f}, ROC-AUC {c['roc_auc']:.3f}, "
                      f"accuracy {c['accuracy']:.3f}."]
    if "fused" in res:
        f = res["fused"]
        lines += ["", f"`fakeface fuse` of {res['best']} with dlib face descriptors ({f['seconds']:.0f} s; CNN weight "
                      f"{f['cnn_weight']:g}, C {f['strength']:g}, both chosen on val), test split:", "",
                      "| scorer | AP | ROC-AUC | accuracy |", "|---|---:|---:|---:|"]
        for k, name in (("cnn", res["best"]), ("face_probe", "dlib face descriptors + logistic regression"),
                        ("fused", "fused")):
            v = f[k]
            lines.append(f"| {name} | {v['average_precision']:.3f} | {v['roc_auc']:.3f} | {v['accuracy']:.3f} |")
    if "speed" in res:
        lines += ["", "| model | predict fp32 (img/s) | predict bf16 (img/s) |", "|---|---:|---:|"]
        for k, v in res["speed"].items():
            lines.append(f"| {k} | {v['fp32']:.1f} | {v['bf16']:.1f} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ffhq-vs-stylegan2")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-fakeface")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--set", action="append", default=[], help="override for every recipe")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "fakeface_saliency.jpg")
    args = parser.parse_args()
    if not (args.data / "real").is_dir() or not (args.data / "fake").is_dir():
        sys.exit(f"bench_fakeface: {args.data}: needs real/ and fake/ (see ../shared/data/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    split = args.out / "split.csv"
    splits = split_for(str(args.data), split, (0.7, 0.1, 0.2), 0)
    results_file = args.out / "results.json"
    res = json.loads(results_file.read_text()) if results_file.is_file() else {"systems": []}
    res.update(machine=machine_header(), n_test=len(splits["test"]))
    for name in args.systems:
        row = run_system(name, args, split)
        res["systems"] = sorted([r for r in res["systems"] if r["system"] != name] + [row],
                                key=lambda r: list(SYSTEMS).index(r["system"]))
        write_results(res, args.out)
        print(f"[{name}] test AP {row['average_precision']:.4f}", flush=True)

    cnns = [r for r in res["systems"] if r["system"] in ("resnet18", "resnet50")]
    if cnns:
        best = max(cnns, key=lambda r: r["average_precision"])
        res["best"] = best["label"]
        model = Path(best["model"])
        print(f"[{best['system']}] robustness", flush=True)
        res["robustness"] = evaluate_detector(model, split, args.out / "best_perturb", perturb=True)["robustness"]
        res["watermark"] = watermark_check(model, split)
        try:
            res["cross_generator"] = cross_generator(model, split, n_fake=len(splits["test"]))
        except Exception as err:  # gan-face-generate not installed: say so, keep the rest
            print(f"cross-generator check skipped: {err}", file=sys.stderr)
        try:
            t0 = time.perf_counter()
            res["fused"] = fuse_detector(model, split, args.out / "fused")
            res["fused"]["seconds"] = time.perf_counter() - t0
        except Exception as err:  # face_recognition not installed: say so, keep the rest
            print(f"fusion with the face probe skipped: {err}", file=sys.stderr)
        res["speed"] = {r["label"]: predict_speed(Path(r["model"])) for r in res["systems"]}
        write_results(res, args.out)
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        saliency_figure(model, split, args.figure)
        print(f"saliency figure: {args.figure}")
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
