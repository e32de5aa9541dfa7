"""``facevox voice eval``: AP, ROC-AUC, EER and accuracy of a detector on the test split of an index,
per generator (each against the real clips), per speaker and sex, the misclassified clips, and the
same under re-encoding (MP3, Ogg Vorbis, 8 kHz and back); one HTML report."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from facevox.audio.io import resample
from facevox.audit import group_metrics
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text
from facevox.metrics import average_precision, detection_summary, eer
from facevox.outdir import output_dir, prepare_output
from facevox.report import Table, classification_report, plot_bars
from facevox.scores import check_finite_scores
from facevox.tasks.fakeface.data import CLASSES
from facevox.tasks.fakeface.evaluate import group_tables, write_scores
from facevox.tasks.voice.detector_config import SAMPLE_RATE
from facevox.tasks.voice.detector_data import Clip, check_generators, keep_generators, load_detector, read_index

PERTURBATIONS = ("mp3", "ogg", "resample8k")


def _through(wave: np.ndarray, fmt: str, subtype: str) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, wave, SAMPLE_RATE, format=fmt, subtype=subtype)
    buf.seek(0)
    data, rate = sf.read(buf, dtype="float32", always_2d=True)
    return _fit(resample(data.mean(1), rate, SAMPLE_RATE), len(wave))


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad to ``n`` samples (MP3 adds encoder delay and padding)."""
    return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))


def _ffmpeg_mp3(wave: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.mp3"
        sf.write(src, wave, SAMPLE_RATE)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-b:a", "64k", str(dst)], check=True)
        data, rate = sf.read(dst, dtype="float32", always_2d=True)
    return _fit(resample(data.mean(1), rate, SAMPLE_RATE), len(wave))


def perturbation(name: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The wave -> wave function of ``name`` (``none``: None); an encoder this machine lacks is an error."""
    if name == "none":
        return None
    if name not in PERTURBATIONS:
        raise FacevoxError(f"unknown perturbation '{name}'; valid: none, {', '.join(PERTURBATIONS)}", "--perturb")
    if name == "resample8k":
        return lambda w: _fit(resample(resample(w, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE), len(w))
    if name == "ogg":
        if "OGG" not in sf.available_formats():
            raise FacevoxError("this libsndfile cannot write Ogg Vorbis", "--perturb")
        return lambda w: _through(w, "OGG", "VORBIS")
    if "MP3" in sf.available_formats():
        return lambda w: _through(w, "MP3", "MPEG_LAYER_III")
    if shutil.which("ffmpeg"):
        return _ffmpeg_mp3
    raise FacevoxError("MP3 needs libsndfile >= 1.1 or ffmpeg on PATH; neither is here", "--perturb")


def per_generator(p: np.ndarray, clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """AP and EER of each generator's fakes against all the real clips."""
    gens = np.array([c.groups.get("generator", "") for c in clips])
    out = {}
    for g in sorted(set(gens) - {"real"}):
        keep = (gens == "real") | (gens == g)
        y = (gens[keep] == g).astype(int)
        if 0 < y.sum() < len(y):
            out[g] = {"average_precision": float(average_precision(p[keep], y)), "eer": float(eer(p[keep], y)[0]),
                      "n": int(y.sum())}
    return out


def summary(p: np.ndarray, clips: Sequence[Clip], threshold: float) -> dict[str, Any]:
    y = np.array([c.label for c in clips])
    return {**detection_summary(p, y, threshold), "eer": float(eer(p, y)[0]), "per_generator": per_generator(p, clips)}


def evaluate_voice(model_dir: str | Path, data: str | Path, out: str | Path, *, split: str = "test",
                   generators: Sequence[str] | None = None, perturb: Sequence[str] = ("none",),
                   device: str = "auto", precision: str = "fp32", workers: int = 0,
                   progress: bool = False) -> dict[str, Any]:
    """Score the ``split`` clips of the index ``data`` (fakes of ``generators`` only, when given); write
    OUT/report.html, metrics.json, scores.csv and misclassified.csv."""
    generators = check_generators(generators or [], "--generators")
    perturbs = {n: perturbation(n) for n in perturb if n != "none"}
    out = Path(out)
    prepare_output(out)
    det = load_detector(model_dir, "voice eval", device, precision)
    clips = keep_generators(read_index(data)[split], generators)
    y = np.array([c.label for c in clips])
    if len(set(y.tolist())) < 2:
        raise FacevoxError(f"the '{split}' split needs real and generated clips, has {int((y == 0).sum())} real and "
                           f"{int(y.sum())} fake", data)
    print(f"voice eval: scoring {len(clips)} clips ({int((y == 0).sum())} real, {int(y.sum())} generated)")
    p = det.score_files([c.path for c in clips], workers=workers)
    check_finite_scores(p, [f"P(fake) of {c.path}" for c in clips], det.where)
    clean = summary(p, clips, det.threshold)
    extra: dict[str, Any] = {"eer": clean["eer"], "per_generator": clean["per_generator"]}
    tables = [Table("Per generator: its fakes against all real clips", ("generator", "fakes", "AP", "EER"),
                    [(g, r["n"], r["average_precision"], r["eer"]) for g, r in clean["per_generator"].items()])]
    notes = [f"model: {model_dir}", f"data: {data} (split '{split}')",
             f"windows of {det.spec.window_seconds:g} s, logits averaged; fake if P(fake) >= {det.threshold:g}"]
    groups = {col: [c.groups.get(col, "") for c in clips] for col in ("sex", "speaker")
              if any(c.groups.get(col) for c in clips)}
    with output_dir(out, "voice eval") as staged:
        figures = []
        if groups:
            audit = group_metrics(p, y, groups, det.threshold)
            extra["groups"] = audit
            tables += group_tables(audit, unit="clips")
            if "sex" in audit:
                bars = {f"sex={g}": {"accuracy": r["accuracy"] or 0.0, "FPR": r["fpr"] or 0.0, "FNR": r["fnr"] or 0.0}
                        for g, r in audit["sex"]["groups"].items()}
                plot_bars(bars, staged / "groups.png", "rate", ylim=(0, 1.05))
                figures.append(("Accuracy and error rates per sex", staged / "groups.png"))
        write_scores(staged / "scores.csv", clips, p, det.threshold)
        wrong = np.flatnonzero((p >= det.threshold) != y.astype(bool))
        order = wrong[np.argsort(-np.abs(p[wrong] - 0.5))]
        lines = ["path,label,generator,speaker,p_fake"] + [
            f"{clips[i].path},{CLASSES[y[i]]},{clips[i].groups.get('generator', '')},"
            f"{clips[i].groups.get('speaker', '')},{p[i]:.6f}" for i in order]
        atomic_write_text(staged / "misclassified.csv", "\n".join(lines) + "\n")
        extra["misclassified"] = int(len(wrong))
        tables.append(Table(f"Misclassified clips ({len(wrong)}; most confident first, 20 shown)",
                            ("clip", "label", "generator", "P(fake)"),
                            [(Path(clips[i].path).name, CLASSES[y[i]], clips[i].groups.get("generator", ""),
                              float(p[i])) for i in order[:20]]))
        if perturbs:
            robust = {"none": clean}
            for name, fn in perturbs.items():
                pp = det.score_files([c.path for c in clips], workers=workers, perturb=fn)
                robust[name] = summary(pp, clips, det.threshold)
                print(f"  {name:<11} AP {robust[name]['average_precision']:.4f}  EER {robust[name]['eer']:.4f}")
            extra["robustness"] = robust
            tables.append(Table("Re-encoded before scoring", ("perturbation", "AP", "EER", "accuracy"),
                                [(k, v["average_precision"], v["eer"], v["accuracy"]) for k, v in robust.items()]))
        metrics = classification_report(p, y, staged, "Generated-speech detection", CLASSES, det.threshold,
                                        extra_metrics=extra, extra_figures=figures, tables=tables, notes=notes)
    return metrics
