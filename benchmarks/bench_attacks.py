"""Adversarial robustness on real data: FGSM, PGD and FoolHD against facevox's best speaker model,
PGD against the GAN-face detector, and the neighbourhood defence against PGD training.

    python benchmarks/bench_attacks.py                       # all parts
    python benchmarks/bench_attacks.py --parts speaker       # or fakeface, defences

speaker   Resemblyzer fine-tuned on LibriSpeech train-clean-100 (``resemblyzer_finetune``, the best
          speaker model of bench_speaker.py), attacked on test-other: each of its 10 speakers enrolled by
          its first recording, up to ``--probes`` more recordings per speaker as probes (first 2 s).
          Identification (closed set of 10) with FGSM and PGD at 20/30/40 dB SNR and FoolHD trained
          against the victim on the enrolment recordings; verification (target trials rejected,
          non-targets accepted at the EER threshold of the clean trials: train-clean-100 has one
          recording per speaker, so no calibration can be held out) with PGD.
fakeface  a ResNet-18 detector trained on ffhq-vs-stylegan2 at 64 px (``resnet18`` recipe, 64 px to fit
          the time here), attacked with PGD (10 steps) at 1/255, 2/255 and 4/255 on its test split.
defences  the same detector trained for 8 epochs with no defence, with the neighbourhood defence (2
          copies in the 4/255 ball) and with PGD training (2 steps at 4/255): clean AP, AP under PGD
          at each budget, and training time.

Results: OUT/results.md and OUT/results.json, a report per run beside them.
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

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PAPER = {"foolhd untargeted": "99.6% success, PESQ > 4.30 (x-vector, 250 VoxCeleb speakers)",
         "foolhd targeted": "99.2% success"}
# The defences at a shorter budget (8 epochs each, so the three fit the time here): the neighbourhood
# defence sees 3x the images per epoch (2 copies), PGD training 3x the passes (2 steps).
DEFENCE_EPOCHS = 8
DEFENCES = {"none": [], "neighbourhood": ["defence.kind=neighbourhood", "defence.copies=2", "defence.eps=0.0157"],
            "pgd": ["defence.kind=pgd", "defence.eps=0.0157", "defence.pgd_steps=2"]}


def speaker_model(out: Path, data: Path) -> Path:
    from facevox.tasks.speaker.config import SpeakerConfig
    from facevox.tasks.speaker.train import train_speaker

    model = out / "speaker-model" / "model"
    if not (model / "model.safetensors").is_file():
        cfg = load_config(SpeakerConfig, "speaker/resemblyzer_finetune", [f"data.train={data / 'train-clean-100'}"])
        train_speaker(cfg, out / "speaker-model", resume=False, licence="LibriSpeech CC BY 4.0")
    return model


def eer_threshold(model: Path, test: Path, probes: int) -> float:
    """The EER threshold of the clean trials the verification attack uses (every probe against every
    enrolled speaker): train-clean-100 has one recording per speaker, so no calibration is held out."""
    import numpy as np
    import torch

    from facevox.attacks.speaker_run import load_split
    from facevox.attacks.victims import SpeakerIdentificationVictim
    from facevox.metrics import eer

    enrolment, _, pr = load_split(test, 1, 2.0, probes)
    victim = SpeakerIdentificationVictim(model, enrolment)
    with torch.no_grad():
        emb = torch.cat([victim.embed(torch.from_numpy(np.stack([w for _, w in pr[i : i + 8]])))
                         for i in range(0, len(pr), 8)])
    cos = (emb @ victim.templates.T).numpy()
    same = np.array([[s == t for t in victim.speakers] for s, _ in pr], dtype=int)
    return float(eer(cos.ravel(), same.ravel())[1])


def speaker_part(args: argparse.Namespace, res: dict) -> None:
    from facevox.attacks.speaker_run import attack_speakers

    model = speaker_model(args.out, args.librispeech)
    test = args.librispeech / "test-other"
    t0 = time.perf_counter()
    ident = attack_speakers(model, test, args.out / "speaker-identification", attacks=("fgsm", "pgd", "foolhd"),
                            snr_db=(20.0, 30.0, 40.0), max_probes=args.probes, seconds=2.0,
                            foolhd_steps=args.foolhd_steps, progress=True)
    ident_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    threshold = eer_threshold(model, test, args.probes)
    ver = attack_speakers(model, test, args.out / "speaker-verification", mode="verification", attacks=("pgd",),
                          snr_db=(30.0, 40.0, 50.0), max_probes=args.probes, seconds=2.0, threshold=threshold,
                          progress=True)
    res["speaker"] = {"model": str(model), "identification": ident, "identification_seconds": ident_s,
                      "verification": ver, "verification_seconds": time.perf_counter() - t0}


def detector(out: Path, data: Path, extra: list[str], name: str) -> tuple[Path, float]:
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.fakeface.data import make_split, read_source, write_split
    from facevox.tasks.fakeface.train import train_fakeface

    split = out / "split.csv"
    if not split.is_file():
        items = read_source(data)
        write_split(split, items, make_split(items, (0.7, 0.1, 0.2), seed=0))
    folder = out / f"detector-{name}"
    if not (folder / "model" / "model.safetensors").is_file():
        cfg = load_config(FakefaceConfig, "fakeface/resnet18.yaml",
                          [f"data.split={split}", "data.load_size=64", "data.crop_size=64", *extra])
        train_fakeface(cfg, folder, licence="FFHQ CC BY-NC-SA 4.0; StyleGAN2 outputs")
    seconds = json.loads((folder / "model" / "extra.json").read_text())["train_seconds"]
    return folder / "model", seconds


def test_manifest(out: Path) -> Path:
    from facevox.tasks.fakeface.data import read_split

    manifest = out / "test.csv"
    test = read_split(out / "split.csv")["test"]
    rows = ["path,label"] + [f"{it.path.resolve()},{'fake' if it.label else 'real'}" for it in test]
    atomic_write_text(manifest, "\n".join(rows) + "\n")
    return manifest


def fakeface_attack(out: Path, model: Path, name: str) -> dict:
    from facevox.attacks.fakeface_run import attack_detector

    return attack_detector(model, test_manifest(out), out / f"attack-{name}", attacks=("pgd",),
                           eps=(1 / 255, 2 / 255, 4 / 255), pgd_steps=10, progress=True)


def fakeface_part(args: argparse.Namespace, res: dict) -> None:
    model, seconds = detector(args.out, args.ffhq, [], "none")
    res["fakeface"] = {"model": str(model), "train_seconds": seconds, **fakeface_attack(args.out, model, "none")}


def defences_part(args: argparse.Namespace, res: dict) -> None:
    rows = {}
    for name, extra in DEFENCES.items():
        model, seconds = detector(args.out, args.ffhq, [f"train.epochs={DEFENCE_EPOCHS}", *extra], f"{name}-e8")
        doc = fakeface_attack(args.out, model, f"{name}-e8")
        rows[name] = {"train_seconds": seconds, "average_precision": doc["average_precision"]}
    res["defences"] = rows


def write_results(res: dict, out: Path) -> None:
    atomic_write_json(out / "results.json", res)
    machine = res["machine"]
    lines = ["# Adversarial robustness\n\n" + ("; ".join(f"{k}: {v}" for k, v in machine.items())
                                                 if isinstance(machine, dict) else str(machine)) + "\n"]
    if "speaker" in res:
        lines += ["## Speaker identification (test-other, 10 speakers)\n",
                  "| attack | SNR budget (dB) | success | accuracy clean -> adversarial | SNR (dB) | PESQ | STOI |",
                  "|---|---:|---:|---|---:|---:|---:|"]
        for r in json.loads((out / "speaker-identification" / "summary.json").read_text()):
            lines.append(f"| {r['attack']} | {r['budget'] if r['budget'] is not None else '-'} | "
                         f"{100 * r['success_rate']:.1f}% | {100 * r['clean_accuracy']:.1f}% -> "
                         f"{100 * r['adversarial_accuracy']:.1f}% | {_f(r.get('snr_db'))} | {_f(r.get('pesq_wb'))} "
                         f"| {_f(r.get('stoi'), 3)} |")
        lines += ["", f"Paper (FoolHD): {PAPER['foolhd untargeted']}; targeted {PAPER['foolhd targeted']}.", "",
                  "## Speaker verification (PGD, test-other)\n",
                  "| SNR budget (dB) | success | accuracy clean -> adversarial | PESQ | STOI |",
                  "|---:|---:|---|---:|---:|"]
        for r in json.loads((out / "speaker-verification" / "summary.json").read_text()):
            lines.append(f"| {r['budget']} | {100 * r['success_rate']:.1f}% | {100 * r['clean_accuracy']:.1f}% -> "
                         f"{100 * r['adversarial_accuracy']:.1f}% | {_f(r.get('pesq_wb'))} | {_f(r.get('stoi'), 3)} |")
    tables = []
    if "fakeface" in res:
        tables.append(("GAN-face detector (ResNet-18 at 64 px, 30 epochs), AP under PGD (10 steps)",
                       {"none": res["fakeface"]}))
    if "defences" in res:
        tables.append((f"Defences ({DEFENCE_EPOCHS} epochs each), AP under PGD (10 steps)", res["defences"]))
    for caption, rows in tables:
        keys = list(next(iter(rows.values()))["average_precision"])
        lines += ["", f"## {caption}\n",
                  "| defence | " + " | ".join(keys) + " | training |", "|---|" + "---:|" * (len(keys) + 1)]
        for name, r in rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{r['average_precision'][k]:.3f}" for k in keys)
                         + f" | {r['train_seconds'] / 60:.1f} min |")
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--librispeech", type=Path, default=DATA / "librispeech")
    parser.add_argument("--ffhq", type=Path, default=DATA / "ffhq-vs-stylegan2")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-attacks")
    parser.add_argument("--parts", nargs="+", default=["speaker", "fakeface", "defences"],
                        choices=["speaker", "fakeface", "defences"])
    parser.add_argument("--probes", type=int, default=4, help="probe recordings per test-other speaker")
    parser.add_argument("--foolhd-steps", type=int, default=200)
    args = parser.parse_args()
    if not (args.librispeech / "test-other").is_dir() and "speaker" in args.parts:
        sys.exit(f"bench_attacks: {args.librispeech}: needs train-clean-100 and test-other")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    res = json.loads(results_file.read_text()) if results_file.is_file() else {}
    res["machine"] = machine_header()
    for part in args.parts:
        t0 = time.perf_counter()
        {"speaker": speaker_part, "fakeface": fakeface_part, "defences": defences_part}[part](args, res)
        print(f"[{part}] {time.perf_counter() - t0:.0f} s", flush=True)
        write_results(res, args.out)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
