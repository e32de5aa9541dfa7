"""``facevox speaker attack``: attack a speaker model on a corpus folder and report what it costs.

Each speaker's first ``enrol`` recordings enrol it; every other recording is a probe, cut to its
first ``seconds`` (shorter ones tiled to that length, the scoring rule). Identification: the
victim is the closed set of enrolled speakers (class = speaker), untargeted (any other speaker)
or targeted (the next speaker in sorted order). Verification: each probe makes a target trial
with its own speaker (the attack wants it rejected) and a non-target trial with the next
speaker (the attack wants it accepted), at the model's calibrated threshold or ``threshold``.
FoolHD (identification only, the paper's setting) is trained against the victim on crops of the
enrolment recordings, never on the probes it is measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.attacks.base import create_attack
from facevox.attacks.perceptual import example_measures
from facevox.attacks.report import write_attack_report
from facevox.attacks.runner import run_attacks
from facevox.audio.io import load_audio
from facevox.errors import FacevoxError
from facevox.outdir import prepare_output
from facevox.tasks.speaker.corpus import read_corpus
from facevox.tasks.speaker.scoring import MIN_SCORING_SECONDS, SAMPLE_RATE, tile_to

ATTACK_NAMES = ("fgsm", "pgd", "foolhd")
MEASURES_AUDIO = ("snr_db", "pesq_wb", "stoi", "linf")


def _crop(wave: np.ndarray, n: int) -> np.ndarray:
    return tile_to(wave, n)[:n].astype(np.float32)


def load_split(data: str | Path, enrol: int, seconds: float, max_probes: int) -> tuple[dict, list, list]:
    """``({speaker: [enrolment waves]}, [probe names], [(speaker, probe wave (n,))])``, speakers sorted."""
    corpus = read_corpus(data)
    by: dict[str, list[Path]] = {}
    for u in corpus.utterances:
        by.setdefault(u.speaker, []).append(Path(u.path))
    n = int(round(seconds * SAMPLE_RATE))
    enrolment, probes, names = {}, [], []
    for spk in sorted(by):
        files = sorted(by[spk])
        if len(files) <= enrol:
            continue
        enrolment[spk] = [load_audio(f, SAMPLE_RATE, MIN_SCORING_SECONDS) for f in files[:enrol]]
        for f in files[enrol:][: max_probes or None]:
            probes.append((spk, _crop(load_audio(f, SAMPLE_RATE, MIN_SCORING_SECONDS), n)))
            names.append(str(f.relative_to(corpus.root)) if f.is_relative_to(corpus.root) else str(f))
    if len(enrolment) < 2:
        raise FacevoxError(f"needs at least 2 speakers with more than {enrol} recording(s) each (the first "
                           f"{enrol} enrol the speaker, the others are probes)", data)
    return enrolment, names, probes


def _plans(attacks: Sequence[str], snr_db: Sequence[float], pgd_steps: int, foolhd: Any) -> list:
    plans = []
    for name in attacks:
        if name == "foolhd":
            plans.append(("foolhd", None, create_attack("foolhd", model=foolhd)))
            continue
        for s in snr_db:
            kw = {"steps": pgd_steps, "seed": 0} if name == "pgd" else {}
            plans.append((name, float(s), create_attack(name, norm="l2", snr_db=float(s), **kw)))
    return plans


def attack_speakers(model: str | Path, data: str | Path, out: str | Path, *, mode: str = "identification",
                    attacks: Sequence[str] = ("fgsm", "pgd"), snr_db: Sequence[float] = (20.0, 30.0, 40.0),
                    targeted: bool = False, enrol: int = 1, seconds: float = 2.0, max_probes: int = 0,
                    pgd_steps: int = 10, foolhd: str | Path | None = None, foolhd_steps: int = 300,
                    threshold: float | None = None, batch_size: int = 8, examples: int = 4,
                    perceptual: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run the attacks and write OUT (:func:`facevox.attacks.report.write_attack_report`)."""
    from facevox.attacks.victims import SpeakerIdentificationVictim, SpeakerVerificationVictim

    for a in attacks:
        if a not in ATTACK_NAMES:
            raise FacevoxError(f"unknown attack '{a}'; valid: {', '.join(ATTACK_NAMES)}", "--attack")
    if mode not in ("identification", "verification"):
        raise FacevoxError(f"unknown mode '{mode}'; valid: identification, verification", "--mode")
    if mode == "verification" and "foolhd" in attacks:
        raise FacevoxError("FoolHD attacks speaker identification (the paper's setting); use --mode "
                           "identification", "--attack")
    if mode == "verification" and targeted:
        raise FacevoxError("a verification attack has one goal per trial (reject a target, accept a non-target); "
                           "--targeted is for identification", "--targeted")
    prepare_output(out)
    enrolment, names, probes = load_split(data, enrol, seconds, max_probes)
    speakers = list(enrolment)
    measure = lambda c, a: {k: v for k, v in example_measures(c, a, "audio", perceptual=perceptual).items()  # noqa: E731
                            if k in MEASURES_AUDIO}
    x = torch.from_numpy(np.stack([w for _, w in probes]))
    notes = [f"model: {model}", f"data: {data}: {len(speakers)} speakers, {len(probes)} probes of {seconds:g} s "
             f"(the first {enrol} recording(s) of each speaker enrol it)",
             "budgets: SNR in dB of the perturbation below the signal, per example (L2 ball)"]
    if mode == "identification":
        victim = SpeakerIdentificationVictim(model, enrolment)
        labels = torch.tensor([speakers.index(s) for s, _ in probes])
        targets = (labels + 1) % len(speakers) if targeted else None
        if "foolhd" in attacks and foolhd is None:
            foolhd = _train_foolhd(victim, enrolment, speakers, x.shape[1], targeted, foolhd_steps, progress)
            notes.append(f"FoolHD trained against this victim for {foolhd_steps} steps on crops of the enrolment "
                         "recordings (not on the probes)")
        rows, ex = run_attacks(victim, x, labels, names, _plans(attacks, snr_db, pgd_steps, foolhd), measure,
                               targets=targets, batch_size=batch_size, n_examples=examples, progress=progress)
        extra = {"mode": mode, "targeted": targeted, "speakers": len(speakers), "probes": len(probes)}
    else:
        rows, ex = [], []
        for i, spk in enumerate(speakers):
            other = speakers[(i + 1) % len(speakers)]
            victim = SpeakerVerificationVictim(model, enrolment[spk], threshold=threshold)
            idx = [k for k, (s, _) in enumerate(probes) if s in (spk, other)]
            lab = torch.tensor([int(probes[k][0] == spk) for k in idx])
            r, e = run_attacks(victim, x[idx], lab, [f"{spk}|{names[k]}" for k in idx],
                               _plans(attacks, snr_db, pgd_steps, None), measure, batch_size=batch_size,
                               n_examples=max(0, examples - len(ex)), progress=progress)
            rows += r
            ex += e
        threshold = victim.threshold
        extra = {"mode": mode, "threshold": threshold, "speakers": len(speakers), "probes": len(probes)}
        notes.append(f"verification at threshold {threshold:.4f}: class 1 = accepted; a target trial's attack "
                     "succeeds when it is rejected, a non-target trial's when it is accepted")
    title = f"Speaker {mode} under attack: {Path(model).name}"
    return write_attack_report(out, title, rows, [m for m in MEASURES_AUDIO if perceptual or m in ("snr_db", "linf")],
                               "SNR budget (dB)", notes=notes, examples=ex, modality="audio", extra=extra)


def _train_foolhd(victim: Any, enrolment: dict, speakers: list[str], length: int, targeted: bool, steps: int,
                  progress: bool) -> Any:
    from facevox.attacks.foolhd import train_foolhd

    waves, labels = [], []
    for i, s in enumerate(speakers):
        for w in enrolment[s]:
            w = tile_to(w, length)
            for start in range(0, len(w) - length + 1, max(1, length // 2)):  # half-overlapping crops
                waves.append(w[start : start + length].astype(np.float32))
                labels.append(i)
    return train_foolhd(victim, torch.from_numpy(np.stack(waves)), torch.tensor(labels), targeted=targeted,
                        steps=steps, batch_size=8, progress=progress)
