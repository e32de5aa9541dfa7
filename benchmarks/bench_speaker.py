"""Speaker verification on real data: the README's results table.

Trains every system on LibriSpeech ``train-clean-100`` (251 speakers, one utterance each, about
an hour of speech) and scores all pairs of ``test-other`` (10 speakers x 10 utterances: 450
target and 4,500 non-target trials), next to Resemblyzer's pretrained encoder as it ships::

    python benchmarks/bench_speaker.py                       # all systems (about an hour on 2 cores)
    python benchmarks/bench_speaker.py --systems xvector_aam resemblyzer
    python benchmarks/bench_speaker.py --set train.max_steps=5   # a quick smoke run

Each system's run folder, model folder and report go under ``--out``; a finished system is not
trained again (delete its folder to redo it) and an interrupted one resumes. Results are written
after every system to ``OUT/results.json`` and ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from common import machine_header

from facevox.config import load_config
from facevox.fileio import atomic_write_text
from facevox.tasks.speaker.config import SpeakerConfig
from facevox.tasks.speaker.corpus import make_trials, read_corpus, write_trials
from facevox.tasks.speaker.evaluate import SpeakerScorer, evaluate
from facevox.tasks.speaker.train import train_speaker

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {  # name -> (recipe, label in the table)
    "pair_alexnet": ("pair_alexnet.yaml", "seed's pair classifier (AlexNet, stacked spectrograms)"),
    "siamese_contrastive": ("siamese_contrastive.yaml", "seed's Siamese CNN + contrastive loss"),
    "xvector_aam": ("xvector_aam.yaml", "x-vector + AAM-softmax"),
    "resnet34_sphereface2": ("resnet34_sphereface2.yaml", "thin ResNet-34 + SphereFace2"),
    "ecapa_mmp": ("ecapa_mmp.yaml", "ECAPA-TDNN + MMP"),
    "resemblyzer_finetune": ("resemblyzer_finetune.yaml", "Resemblyzer fine-tuned (AAM, L2-SP)"),
    "resemblyzer": (None, "Resemblyzer as it ships (pretrained, not trained here)"),
}


def pair_accuracy(scorer: SpeakerScorer, trials, root: Path, seed: int = 0) -> float:
    """The seed's check: accuracy of the pair classifier's own decision (logit > 0) on balanced pairs."""
    rng = np.random.default_rng(seed)
    targets = [t for t in trials if t.label]
    nontargets = [t for t in trials if not t.label]
    picked = targets + [nontargets[i] for i in rng.choice(len(nontargets), len(targets), replace=False)]
    scores = scorer.score_trials(picked, root, cache=False)
    labels = np.array([t.label for t in picked])
    return float(np.mean((scores > 0) == labels))


def run_system(name: str, args: argparse.Namespace, trials_path: Path, test_root: Path) -> dict:
    recipe, label = SYSTEMS[name]
    out = args.out / name
    row: dict = {"system": name, "label": label}
    model = None
    if recipe is not None:
        cfg = load_config(SpeakerConfig, f"speaker/{recipe}",
                          [f"data.train={args.data / 'train-clean-100'}", *args.set])
        done = out / "model" / "model.safetensors"
        if done.is_file():
            extra = json.loads((out / "model" / "extra.json").read_text())
            row["train_seconds"] = extra["train_seconds"]
            print(f"[{name}] already trained: {out / 'model'}")
        else:
            result = train_speaker(cfg, out, licence="CC BY 4.0 (LibriSpeech)", resume=True)
            row["train_seconds"] = result["train_seconds"]
        model = out / "model"
        row["steps"] = cfg.train.max_steps or None
    t0 = time.perf_counter()
    metrics = evaluate(trials_path, test_root, out / "eval", model=model,
                       backend="resemblyzer" if recipe is None else "model", cache=False)
    row["eval_seconds"] = time.perf_counter() - t0
    row["eer"], row["min_dcf_0.01"] = metrics["eer"], metrics["min_dcf_0.01"]
    row["report"] = str(out / "eval" / "report.html")
    if name == "pair_alexnet":
        from facevox.tasks.speaker.corpus import read_trials

        row["pair_accuracy_balanced"] = pair_accuracy(SpeakerScorer(model), read_trials(trials_path), test_root)
    return row


def write_results(rows: list[dict], out: Path, header: dict) -> None:
    atomic_write_text(out / "results.json", json.dumps({"machine": header, "results": rows}, indent=2))
    lines = [
        f"Measured on {header['machine']} ({header['torch']}), {header['date']}.",
        "",
        "| system | EER (%) | minDCF(0.01) | training time here |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        t = f"{r['train_seconds'] / 60:.1f} min" if "train_seconds" in r else "none (pretrained)"
        lines.append(f"| {r['label']} | {100 * r['eer']:.2f} | {r['min_dcf_0.01']:.3f} | {t} |")
    for r in rows:
        if "pair_accuracy_balanced" in r:
            lines += ["", f"Pair classifier accuracy on balanced test-other pairs (450 same, 450 different): "
                          f"{100 * r['pair_accuracy_balanced']:.1f}% (the seed reports 94% on its own data)."]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "librispeech")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-speaker")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--set", action="append", default=[], help="override for every recipe, e.g. train.max_steps=5")
    args = parser.parse_args()
    if not (args.data / "train-clean-100").is_dir() or not (args.data / "test-other").is_dir():
        sys.exit(f"bench_speaker: {args.data}: needs train-clean-100/ and test-other/ (see ../shared/data/README.md)")
    args.out.mkdir(parents=True, exist_ok=True)
    test_root = args.data / "test-other"
    trials_path = write_trials(args.out / "test_other_trials.txt", make_trials(read_corpus(test_root), mode="all"))
    header = machine_header()
    results_file = args.out / "results.json"
    rows = json.loads(results_file.read_text())["results"] if results_file.is_file() else []
    for name in args.systems:
        rows = [r for r in rows if r["system"] != name]
        row = run_system(name, args, trials_path, test_root)
        rows = sorted([*rows, row], key=lambda r: list(SYSTEMS).index(r["system"]))
        write_results(rows, args.out, header)
        print(f"[{name}] EER {100 * row['eer']:.2f}%", flush=True)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
