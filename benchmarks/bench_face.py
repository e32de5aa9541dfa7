"""Face verification on real data: the README's loss comparison.

Data: ``../shared/data/orl-faces`` (AT&T/ORL: 40 people x 10 greyscale photos, 92x112, faces
centred in the frame). Training on s1-s30, evaluation on a 10-fold pairs file made from s31-s40
(people never seen in training: 10 folds x 30 same + 30 different pairs) and on identification
(s31-s35 enrolled with one photo each; every other photo of s31-s40 a probe)::

    python benchmarks/bench_face.py                       # every loss + dlib (about 25 min on 2 cores)
    python benchmarks/bench_face.py --losses arcface sphereface2
    python benchmarks/bench_face.py --set train.max_steps=3 --out runs/bench-face-smoke   # smoke run

ORL's photos are not landmark-aligned but tightly framed, so they are only resized to the
recipes' 112x96 (``face align --aligned``). Every loss uses the same backbone and budget
(``src/facevox/recipes/face/mobilefacenet_<loss>.yaml``). Results: ``OUT/results.json`` and ``OUT/results.md``;
a trained loss is not trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import machine_header

from facevox.config import load_config
from facevox.fileio import atomic_write_text
from facevox.tasks.face.align import align_command
from facevox.tasks.face.config import FaceConfig
from facevox.tasks.face.evaluate import FaceScorer, evaluate_pairs
from facevox.tasks.face.pairs import make_pairs, read_identities, write_pairs
from facevox.tasks.face.train import train_face

ROOT = Path(__file__).resolve().parent.parent
LOSSES = {
    "softmax": "softmax",
    "normface": "NormFace",
    "cosface": "CosFace (m 0.35)",
    "arcface": "ArcFace (m 0.5)",
    "sphereface": "SphereFace (m 4, annealed)",
    "sphereface_r": "SphereFace-R (v2, m 1.4, hard norm, CGD)",
    "sphereface2": "SphereFace2-C (m 0.4)",
}


def prepare(data: Path, out: Path) -> tuple[Path, Path, Path]:
    train, test = out / "orl" / "train", out / "orl" / "test"
    if not (out / "orl" / ".done").is_file():
        for name, keep in (("train", range(1, 31)), ("test", range(31, 41))):
            src = out / "orl" / f"src-{name}"
            src.mkdir(parents=True, exist_ok=True)
            for i in keep:  # symlinks to the files: the photos themselves stay in ../shared/data
                (src / f"s{i}").mkdir(exist_ok=True)
                for photo in (data / f"s{i}").iterdir():
                    link = src / f"s{i}" / photo.name
                    if not link.exists():
                        link.symlink_to(photo.resolve())
            align_command(src, out / "orl" / name, backend="dlib", size=(112, 96), largest=False, aligned=True)
        (out / "orl" / ".done").write_text("")
    pairs = out / "orl_pairs.txt"
    if not pairs.is_file():
        write_pairs(pairs, make_pairs(read_identities(test), folds=10, per_fold=30, seed=0), 10, 30)
    return train, test, pairs


def row_of(name: str, label: str, m: dict, train_seconds: float | None) -> dict:
    ident = m.get("identification", {})
    return {"system": name, "label": label, "train_seconds": train_seconds, "kfold_accuracy": m["kfold_accuracy"],
            "kfold_std": m["kfold_std"], "eer": m["eer"], "tar_at_far_0.01": m["tar_at_far_0.01"],
            "rank1": ident.get("rank1"), "dir_at_far_0.1": ident.get("dir", {}).get("0.1")}


def write_results(res: dict, out: Path) -> None:
    atomic_write_text(out / "results.json", json.dumps(res, indent=2))
    h = res["machine"]
    lines = [f"Measured on {h['machine']} ({h['torch']}), {h['date']}; 600 pairs of 10 unseen people.", "",
             "| loss | 10-fold accuracy (%) | EER (%) | TAR@FAR=1% | rank-1 (%) | DIR@FAR=10% (%) | training |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        t = "none (pretrained)" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
        lines.append(f"| {r['label']} | {100 * r['kfold_accuracy']:.2f} +- {100 * r['kfold_std']:.2f} | "
                     f"{100 * r['eer']:.2f} | {r['tar_at_far_0.01']:.3f} | {100 * r['rank1']:.1f} | "
                     f"{100 * r['dir_at_far_0.1']:.1f} | {t} |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "orl-faces")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-face")
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), choices=list(LOSSES),
                        help="losses to train (none: only dlib's pretrained model)")
    parser.add_argument("--no-dlib", action="store_true", help="leave out dlib's pretrained model")
    parser.add_argument("--set", action="append", default=[], help="override for every recipe")
    args = parser.parse_args()
    if not (args.data / "s1").is_dir():
        sys.exit(f"bench_face: {args.data}: needs s1..s40 (see ../shared/data/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    train, test, pairs = prepare(args.data, args.out)
    results_file = args.out / "results.json"
    res = json.loads(results_file.read_text()) if results_file.is_file() else {"rows": []}
    res["machine"] = machine_header()
    order = [*LOSSES, "dlib"]
    for name in args.losses:
        out = args.out / name
        cfg = load_config(FaceConfig, f"face/mobilefacenet_{name}",
                          [f"data.train={train}", *args.set])
        if (out / "model" / "model.safetensors").is_file():
            seconds = json.loads((out / "model" / "extra.json").read_text())["train_seconds"]
        else:
            seconds = train_face(cfg, out, licence="ORL: research use, credit AT&T Laboratories Cambridge")[
                "train_seconds"]
        m = evaluate_pairs(pairs, test, out / "eval", FaceScorer(out / "model"), identify_root=test)
        res["rows"] = sorted([r for r in res["rows"] if r["system"] != name] + [row_of(name, LOSSES[name], m, seconds)],
                             key=lambda r: order.index(r["system"]))
        write_results(res, args.out)
        print(f"[{name}] 10-fold accuracy {100 * m['kfold_accuracy']:.2f}%  EER {100 * m['eer']:.2f}%", flush=True)
    if not args.no_dlib:
        try:
            t0 = time.perf_counter()
            m = evaluate_pairs(pairs, test, args.out / "dlib" / "eval", FaceScorer(backend="dlib"), identify_root=test)
            label = f"dlib ResNet, pretrained as shipped ({time.perf_counter() - t0:.0f} s to score)"
            res["rows"] = [r for r in res["rows"] if r["system"] != "dlib"] + [row_of("dlib", label, m, None)]
            write_results(res, args.out)
        except Exception as err:
            print(f"dlib baseline skipped: {err}", file=sys.stderr)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
