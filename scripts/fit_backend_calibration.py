"""Fit the threshold and calibration shipped with a pretrained backend (src/facevox/backends/<backend>.json).

Resemblyzer (``--backend resemblyzer``, the default):

Fitted on LibriSpeech train-clean-100 (CC BY 4.0; one utterance per speaker, so each is cut into
three segments: same-speaker trials are same-session), evaluated on test-other (cross-session,
all pairs of whole utterances)::

    .venv/bin/python scripts/fit_backend_calibration.py --data ../shared/data/librispeech/train-clean-100 \
        --eval-data ../shared/data/librispeech/test-other --out src/facevox/backends/resemblyzer.json

dlib's face model (``--backend dlib``) on the ORL faces (research use, credit AT&T Laboratories
Cambridge): fitted on identities s1-s20, evaluated on s21-s40 (all pairs of each half), every photo
going through what ``facevox face verify a b`` does with no flags (dlib HOG detection, 5-point
alignment to 112x112, dlib's descriptor, minus the Euclidean distance). A photo where no single face
is detected (``verify`` refuses it) is left out of the trials and counted::

    .venv/bin/python scripts/fit_backend_calibration.py --backend dlib --data ../shared/data/orl-faces \
        --out src/facevox/backends/dlib.json
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


def avx512_bf16_count() -> int:
    """What ``grep -c avx512_bf16 /proc/cpuinfo`` prints: the logical CPUs flagging bf16 AVX-512."""
    return sum("avx512_bf16" in line for line in Path("/proc/cpuinfo").read_text().splitlines())


def eval_figures(s: np.ndarray, y: np.ndarray, cal) -> dict:
    """EER, minDCF (P_target 0.01), FAR and FRR at the fitted threshold and Cllr of scores ``s``, labels ``y``."""
    accept = s >= cal.threshold
    return {"trials": int(len(s)), "target": int(y.sum()), "eer": eer(s, y)[0], "min_dcf_0.01": min_dcf(s, y)[0],
            "far_at_threshold": float(accept[y == 0].mean()), "frr_at_threshold": float((~accept[y == 1]).mean()),
            "cllr": cllr(cal.llr(s), y)}


def orl_identities(root: Path) -> list[Path]:
    """ORL's identity folders s1..s40 in numeric order."""
    dirs = [d for d in root.iterdir() if d.is_dir() and d.name[:1] == "s" and d.name[1:].isdigit()]
    return sorted(dirs, key=lambda d: int(d.name[1:]))


def fit_dlib(args: argparse.Namespace) -> dict:
    """Embed every ORL photo as ``facevox face verify`` does; fit on the first identities, evaluate on the rest."""
    from facevox.errors import FacevoxError
    from facevox.image.io import load_image
    from facevox.tasks.face.align import align_photo
    from facevox.tasks.face.evaluate import FaceScorer

    t0 = time.perf_counter()
    scorer = FaceScorer(None, "auto")  # what verify builds with no --model: dlib's model
    ids = orl_identities(Path(args.data))
    if len(ids) <= args.fit_identities:
        raise SystemExit(f"need more than {args.fit_identities} identity folders under {args.data}")
    halves = {"fit": ids[: args.fit_identities], "eval": ids[args.fit_identities :]}
    emb: dict[str, list] = {"fit": [], "eval": []}
    who: dict[str, list] = {"fit": [], "eval": []}
    failed: dict[str, list[str]] = {"fit": [], "eval": []}
    photos = {"fit": 0, "eval": 0}
    for half, dirs in halves.items():
        for d in dirs:
            for f in sorted(d.glob("*.pgm"), key=lambda f: (len(f.stem), f.stem)):
                photos[half] += 1
                try:
                    crop = align_photo(load_image(f), f, "dlib")  # verify's detector and alignment
                except FacevoxError as err:
                    failed[half].append(f"{f.relative_to(args.data)}: {err.problem.split(' (')[0]}")
                    continue
                emb[half].append(scorer.embed([crop])[0])
                who[half].append(d.name)
    i, j, same = all_pairs(who["fit"])
    fe = np.stack(emb["fit"])
    cal = fit_calibration(scorer.score(fe[i], fe[j]), same.astype(int), args.target_far, name="--target-far")
    i, j, same = all_pairs(who["eval"])
    ee = np.stack(emb["eval"])
    s, y = scorer.score(ee[i], ee[j]), same.astype(int)
    span = lambda dirs: f"{dirs[0].name}-{dirs[-1].name}"  # noqa: E731
    fit_trials = int(cal.n_target + cal.n_nontarget)
    return {
        "backend": "dlib", "similarity": "euclidean", "calibration": cal.to_dict(),
        "pipeline": "facevox face verify a b with no flags: dlib HOG detector (upsample 1, min 32 px), dlib 5-point "
                    "landmarks, similarity alignment to the 112x112 ArcFace frame, dlib ResNet descriptor "
                    "(1 jitter), score = -Euclidean distance",
        "fitted_on": {"data": f"AT&T/ORL Database of Faces, identities {span(halves['fit'])} "
                              f"({len(halves['fit'])} people x 10 photos, 92x112 grey)",
                      "licence": "research use; credit AT&T Laboratories Cambridge",
                      "photos": photos["fit"], "embedded": len(who["fit"]), "trials": fit_trials,
                      "target": cal.n_target, "protocol": "all pairs of the embedded photos"},
        "evaluated_on": {"data": f"AT&T/ORL, identities {span(halves['eval'])} ({len(halves['eval'])} people, "
                                 "disjoint from the fit)", "photos": photos["eval"], "embedded": len(who["eval"]),
                         **eval_figures(s, y, cal)},
        "detection_failures": {
            "count": len(failed["fit"]) + len(failed["eval"]), "fit": len(failed["fit"]), "eval": len(failed["eval"]),
            "handling": "left out of the trials (face verify refuses such a photo with an error; --aligned "
                        "skips detection)", "photos": failed["fit"] + failed["eval"]},
        "command": "python " + " ".join(sys.argv), "cpu": cpu_name(), "cpu_avx512_bf16_count": avx512_bf16_count(),
        "facevox_version": __version__, "fit_seconds": round(time.perf_counter() - t0, 1),
        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["resemblyzer", "dlib"], default="resemblyzer")
    p.add_argument("--data", required=True, help="resemblyzer: training speakers; dlib: the ORL root (s1..s40)")
    p.add_argument("--eval-data", help="resemblyzer: evaluation speakers (required); dlib: unused")
    p.add_argument("--fit-identities", type=int, default=20, help="dlib: fit on the first N ORL identities")
    p.add_argument("--target-far", type=float, default=0.01)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.backend == "dlib":
        card = fit_dlib(args)
        atomic_write_text(args.out, json.dumps(card, indent=2) + "\n")
        print(json.dumps({k: card[k] for k in ("evaluated_on", "calibration")}, indent=2))
        print(f"detection failures: {card['detection_failures']['count']}", file=sys.stderr)
        return
    if not args.eval_data:
        p.error("--eval-data is required with --backend resemblyzer")
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
