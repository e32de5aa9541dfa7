"""Evaluating a detector: metrics, per-group audit, the misclassified gallery, saliency of right
and wrong decisions, and AP under perturbations; everything in one HTML report."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.audit import group_metrics
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text, report_skipped
from facevox.image.transforms import PERTURBATIONS
from facevox.metrics import detection_summary
from facevox.outdir import output_dir, prepare_output
from facevox.report import Table, classification_report, plot_bars, plot_image_grid
from facevox.scores import check_finite_scores
from facevox.tasks.fakeface.data import CLASSES, LabelledImage, read_source, read_split
from facevox.tasks.fakeface.scoring import Detector, ScoringImages
from facevox.textfile import read_text


def read_eval_items(data: str | Path, split: str) -> list[LabelledImage]:
    """The images to score: one split of a split file, or all of a folder / manifest."""
    data = Path(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        header = (read_text(data).splitlines() or [""])[0].lower()
        if "split" in [c.strip() for c in header.split(",")]:
            items = read_split(data)[split]
            if not items:
                raise FacevoxError(f"the split file has no '{split}' images", data)
            return items
    return read_source(data)


def evaluate_detector(model_dir: str | Path, data: str | Path, out: str | Path, *, split: str = "test",
                      perturb: bool = False, skip_bad: bool = False, batch_size: int = 32,
                      precision: str = "fp32", n_saliency: int = 3, device: str = "auto",
                      workers: int = 0) -> dict[str, Any]:
    """Score ``data`` with the model in ``model_dir``; write OUT/report.html, metrics.json, scores.csv.

    Images are decoded and resized in ``workers`` DataLoader processes and scored on ``device`` in
    ``precision``; only the few images the report shows (misclassified gallery, saliency) are
    decoded again, so memory does not grow with the number of images beyond their paths and scores.
    """
    out = Path(out)
    prepare_output(out)  # a wrong --out fails now, not after the scoring
    det = Detector.load(str(model_dir), use="fakeface eval", batch_size=batch_size, precision=precision,
                        device=device)
    items = read_eval_items(data, split)
    y = np.array([it.label for it in items])
    _check_both_classes(y, data)
    print(f"fakeface: scoring {len(items)} images ({int((y == 0).sum())} real, {int(y.sum())} fake)")
    kept, p, bad = det.score_files([it.path for it in items], workers=workers, skip_bad=skip_bad)
    report_skipped(bad, "image")
    items = [items[i] for i in kept]
    y = y[kept]
    _check_both_classes(y, data)
    check_finite_scores(p, [f"P(fake) of {it.path}" for it in items], det.where)
    images = ScoringImages([it.path for it in items], det.load_size, det.mask)  # the report's few images, again
    with output_dir(out, "fakeface eval") as out:  # every output in a new folder, swapped in at the end
        write_scores(out / "scores.csv", items, p, det.threshold)

        extra: dict[str, Any] = {}
        figures: list[tuple[str, Path]] = []
        tables: list[Table] = []
        notes = [f"model: {model_dir}", f"data: {data}" + (f" (split '{split}')" if split else ""),
                 f"images resized to {det.load_size} px; fake if P(fake) >= {det.threshold:g}"]

        columns = sorted({c for it in items for c in it.groups})
        if columns:
            audit = group_metrics(p, y, {c: [it.groups.get(c, "") for it in items] for c in columns}, det.threshold)
            extra["groups"] = audit
            tables += group_tables(audit)
            bars = {f"{c}={g}": {"accuracy": r["accuracy"] or 0.0, "FPR": r["fpr"] or 0.0, "FNR": r["fnr"] or 0.0}
                    for c, a in audit.items() for g, r in a["groups"].items()}
            plot_bars(bars, out / "groups.png", "rate", ylim=(0, 1.05))
            figures.append(("Accuracy and error rates per group", out / "groups.png"))

        wrong = np.flatnonzero((p >= det.threshold) != y.astype(bool))
        if len(wrong):
            order = wrong[np.argsort(-np.abs(p[wrong] - 0.5))][:32]
            titles = [f"{CLASSES[y[i]]} -> {CLASSES[1 - y[i]]} {p[i]:.2f}" for i in order]
            figures.append((f"Misclassified images ({len(wrong)}; most confident first): true -> predicted, P(fake)",
                            plot_image_grid([images.image(i) for i in order], out / "misclassified.png", titles,
                                            ncols=8)))
        else:
            notes.append("no image was misclassified at the threshold")
        if n_saliency > 0:
            figures.append(_saliency_figure(det, images, y, p, out / "saliency.png", n_saliency))

        if perturb:
            robust = {}
            for name in PERTURBATIONS:
                robust[name] = detection_summary(_perturbed(det, items, name, workers), y, det.threshold)
                print(f"  {name:<11} AP {robust[name]['average_precision']:.4f}")
            robust = {"clean": detection_summary(p, y, det.threshold), **robust}
            extra["robustness"] = robust
            tables.append(Table("Robustness: the test images re-encoded or degraded before scoring",
                                ("perturbation", "AP", "ROC-AUC", "accuracy"),
                                [(k, v["average_precision"], v["roc_auc"], v["accuracy"]) for k, v in robust.items()]))
            ap = {k: {"AP": v["average_precision"]} for k, v in robust.items()}
            plot_bars(ap, out / "robustness.png", "AP", ylim=(0, 1.05))
            figures.append(("Average precision under perturbations", out / "robustness.png"))
        metrics = classification_report(p, y, out, "GAN-face detection", CLASSES, det.threshold, extra_metrics=extra,
                                         extra_figures=figures, tables=tables, notes=notes)
    return metrics  # classification_report wrote metrics.json with the extras


def _check_both_classes(y: np.ndarray, data: str | Path) -> None:
    if not len(y):
        raise FacevoxError("no images to evaluate", data)
    if len(set(y.tolist())) < 2:
        raise FacevoxError(f"evaluation needs real and fake images; found only {CLASSES[int(y[0])]}", data)


def _perturbed(det: Detector, items: list[LabelledImage], name: str, workers: int) -> np.ndarray:
    """P(fake) of the images under the perturbation ``name`` (decoded again in the workers)."""
    _, p, _ = det.score_files([it.path for it in items], workers=workers, perturb=name)
    return p


def write_scores(path: Path, items: Sequence[Any], p: np.ndarray, threshold: float) -> None:
    """``scores.csv``: path, label, P(fake), decision, right or not and the group columns of each item
    (anything with ``path``, ``label`` and ``groups``: images here, clips in ``voice eval``)."""
    columns = sorted({c for it in items for c in it.groups})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "p_fake", "predicted", "correct", *columns])
    for it, pi in zip(items, p, strict=True):
        pred = int(pi >= threshold)
        w.writerow([str(it.path), CLASSES[it.label], f"{pi:.6f}", CLASSES[pred], int(pred == it.label),
                    *(it.groups.get(c, "") for c in columns)])
    atomic_write_text(path, buf.getvalue())


def group_tables(audit: dict[str, Any], unit: str = "images") -> list[Table]:
    """One report table per audited column (:func:`facevox.audit.group_metrics`'s output): counts of
    ``unit``, accuracy, FPR and FNR per group, then the largest gaps."""
    tables = []
    for column, a in audit.items():
        rows = [(g, r["n"], r["accuracy"], r["fpr"], r["fnr"]) for g, r in a["groups"].items()]
        rows += [(f"largest gap ({rate})", "", g["gap"] if rate == "accuracy" else "",
                  g["gap"] if rate == "fpr" else "", g["gap"] if rate == "fnr" else "")
                 for rate, g in a["gaps"].items()]
        tables.append(Table(f"Per-group results by '{column}' (FPR: real called fake; FNR: fake missed)",
                            (column, unit, "accuracy", "FPR", "FNR"), rows))
    return tables


def _saliency_figure(det: Detector, images: ScoringImages, y: np.ndarray, p: np.ndarray, path: Path,
                     n: int) -> tuple[str, Path]:
    """Guided Backpropagation and Grad-CAM for the most confident right and wrong decisions."""
    from facevox.explain.overlay import plot_saliency_grid
    from facevox.tasks.fakeface.saliency import saliency_maps, usable_methods

    pred = (p >= det.threshold).astype(int)
    conf = np.abs(p - 0.5)
    right = [i for i in np.argsort(-conf) if pred[i] == y[i]]
    wrong = [i for i in np.argsort(-conf) if pred[i] != y[i]]
    # correct ones of both classes, then the wrong ones
    chosen = [i for i in right if y[i] == 1][: (n + 1) // 2] + [i for i in right if y[i] == 0][: n // 2] + wrong[:n]
    methods = usable_methods(det.model, ("guided_backprop", "gradcam"))
    targets = [CLASSES[pred[i]] for i in chosen]
    arrays = [images.image(i) for i in chosen]
    maps = saliency_maps(det.model, arrays, methods, targets)
    titles = [f"{'RIGHT' if pred[i] == y[i] else 'WRONG'}: {CLASSES[y[i]]}, P(fake) {p[i]:.2f}" for i in chosen]
    plot_saliency_grid(arrays, maps, path, titles)
    return ("Saliency of correct (top) and wrong (bottom) decisions, explaining the predicted class", path)
