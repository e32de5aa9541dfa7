"""Fit the threshold and calibration shipped with Resemblyzer (src/facevox/backends/resemblyzer.json).

Fitted on LibriSpeech train-clean-100 (CC BY 4.0; one utterance per speaker, so each is cut into
three segments: same-speaker trials are same-session), evaluated on test-other (cross-session,
all pairs of whole utterances)::

    .venv/bin/python scripts/fit_backend_calibration.py --data ../shared/data/librispeech/train-clean-100 \
        --eval-data ../shared/data/librispeech/test-other --out src/facevox/backends/resemblyzer.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from facevox import __version__
from facevox.audio.io import list_audio_files, load_audio
from facevox.fileio import atomic_write_text
from facevox.metrics import cllr, eer, min_dcf
from facevox.verification.calibration import all_pairs, fit_calibration
from facevox.verification.scoring import pair_similarity

SR = 16000


def segments(wave: np.ndarray, n: int = 3, min_seconds: float = 2.0) -> list[np.ndarray]:
    """``n`` equal consecutive segments of a wave, or none when a segment would be under ``min_seconds``."""
    length = len(wave) // n
    if length < min_seconds * SR:
        return []
    return [wave[i * length : (i + 1) * length] for i in range(n)]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--eval-data", required=True)
    p.add_argument("--target-far", type=float, default=0.01)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    from facevox.tasks.speaker.evaluate import ResemblyzerEmbedder

    embed = ResemblyzerEmbedder()
    t0 = time.perf_counter()
    emb, who = [], []
    for f in list_audio_files(Path(args.data)):
        for seg in segments(load_audio(f, SR)):
            emb.append(embed(seg))
            who.append(f.relative_to(args.data).parts[0])
    emb = np.stack(emb)
    i, j, same = all_pairs(who)
    cal = fit_calibration(pair_similarity(emb[i], emb[j]), same.astype(int), args.target_far, name="--target-far")
    fit_seconds = time.perf_counter() - t0
    files = list_audio_files(Path(args.eval_data))
    e = np.stack([embed(load_audio(f, SR)) for f in files])
    owners = [f.relative_to(args.eval_data).parts[0] for f in files]
    i, j, same = all_pairs(owners)
    s, y = pair_similarity(e[i], e[j]), same.astype(int)
    accept = s >= cal.threshold
    card = {
        "backend": "resemblyzer", "similarity": "cosine", "calibration": cal.to_dict(),
        "fitted_on": {"data": "LibriSpeech train-clean-100 (facevox shared copy: 251 speakers x 1 utterance)",
                      "licence": "CC BY 4.0", "trials": int(cal.n_target + cal.n_nontarget),
                      "target": cal.n_target, "protocol": "each utterance cut into 3 equal segments; all pairs "
                      "(same-speaker trials are same-session)"},
        "evaluated_on": {"data": "LibriSpeech test-other (10 speakers x 10 utterances, cross-session; all pairs)",
                         "trials": int(len(s)), "eer": eer(s, y)[0], "min_dcf_0.01": min_dcf(s, y)[0],
                         "far_at_threshold": float(accept[y == 0].mean()),
                         "frr_at_threshold": float((~accept[y == 1]).mean()), "cllr": cllr(cal.llr(s), y)},
        "command": "python " + " ".join(sys.argv), "cpu": cpu_name(), "facevox_version": __version__,
        "fit_seconds": round(fit_seconds, 1),
    }
    atomic_write_text(args.out, json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["evaluated_on"], indent=2))


if __name__ == "__main__":
    main()
