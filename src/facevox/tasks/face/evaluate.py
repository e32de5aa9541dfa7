"""Face verification on a pairs file (LFW protocol), identification on a gallery/probe split, and
``verify`` for two photos; with a trained model or dlib's pretrained one (``backend="dlib"``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.identification import dir_at_far, rank_k_accuracy, templates
from facevox.image.io import load_image
from facevox.metrics import kfold_accuracy, tar_at_fars
from facevox.outdir import prepare_output
from facevox.report import Table, verification_report
from facevox.scores import check_finite_scores
from facevox.tasks.face.pairs import read_identities, read_pairs

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]  # aligned uint8 crops -> (N, D) unit embeddings
FARS = (1e-2, 1e-3)


class FaceScorer:
    """Embeds aligned face crops with a model folder or dlib's model, and scores pairs of them.

    Scores are cosine similarities (model) or minus the Euclidean distance (dlib, whose model is
    trained for a distance threshold of 0.6); higher means "same person" either way.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "model", precision: str = "fp32",
                 use: str = "face scoring") -> None:
        self.backend = backend
        self.where: str | Path = f"--backend {backend}"  # what a non-finite score is blamed on
        self.threshold: float | None = None
        self._cache: dict[tuple[Path, Any], np.ndarray] = {}
        if backend == "dlib":
            from facevox.tasks.face.dlib_backend import DlibEmbedder

            self.embed: Embed = DlibEmbedder().embed
            self.name = "dlib face recognition ResNet (pretrained, as shipped)"
            self.threshold = -0.6
        elif backend == "model":
            if not model:
                raise FacevoxError("give --model (a model folder) or --backend dlib")
            from facevox.checkpoint import read_model_folder
            from facevox.tasks.face.embed import FaceEmbedder

            folder = read_model_folder(model, task="face", use=use)
            self.where = folder.path
            extra = folder.extra
            self.embed = FaceEmbedder(folder.model, tuple(extra.get("input_size", (112, 112))),
                                      flip=bool(extra.get("flip", True)), precision=precision).embed
            self.name = f"{model} ({folder.spec['name']}, {extra.get('loss', '?')} loss)"
            self.threshold = extra.get("threshold")
        else:
            raise FacevoxError(f"unknown backend '{backend}'; valid: model, dlib", "--backend")

    def score(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        if self.backend == "dlib":
            return -np.linalg.norm(ea - eb, axis=-1)
        return np.sum(ea * eb, axis=-1)

    def embed_files(self, paths: Sequence[Path], align: Callable[[np.ndarray, Path], np.ndarray] | None = None,
                    ) -> dict[Path, np.ndarray]:
        """Embeddings of image files, each decoded and embedded once per scorer (pairs and
        identification on the same folder share them)."""
        unique = list(dict.fromkeys(paths))
        todo = [p for p in unique if (p, align) not in self._cache]
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            images = [load_image(p) for p in chunk]
            if align is not None:
                images = [align(img, p) for img, p in zip(images, chunk, strict=True)]
            for p, e in zip(chunk, self.embed(images), strict=True):
                self._cache[(p, align)] = e
            if len(todo) > 200:
                print(f"embedded {min(start + 64, len(todo))}/{len(todo)} images", file=sys.stderr)
        return {p: self._cache[(p, align)] for p in unique}


def evaluate_pairs(pairs_file: str | Path, root: str | Path, out: str | Path, scorer: FaceScorer,
                   identify_root: str | Path | None = None) -> dict[str, Any]:
    """10-fold accuracy (threshold from the other 9 folds), EER, ROC-AUC, TAR@FAR; report in OUT."""
    prepare_output(out)  # a wrong --out fails now, not after the embedding
    pairs = read_pairs(pairs_file, root)
    emb = scorer.embed_files([p.a for p in pairs] + [p.b for p in pairs])
    scores = scorer.score(np.stack([emb[p.a] for p in pairs]), np.stack([emb[p.b] for p in pairs]))
    check_finite_scores(scores, [f"{p.a} and {p.b}" for p in pairs], scorer.where)
    labels = np.array([p.same for p in pairs], dtype=int)
    folds = np.array([p.fold for p in pairs])
    k = kfold_accuracy(scores, labels, folds)
    tars = tar_at_fars(scores, labels, FARS)
    extra: dict[str, Any] = {"kfold_accuracy": k.mean, "kfold_std": k.std, "n_folds": len(k.accuracies),
                             **{f"tar_at_far_{f:g}": t for f, t in tars.items()}}
    tables = [Table("Accuracy per fold (threshold chosen on the other folds)", ("fold", "accuracy", "threshold"),
                    [(i + 1, a, t) for i, (a, t) in enumerate(zip(k.accuracies, k.thresholds, strict=True))])]
    if identify_root:
        extra["identification"] = identify(identify_root, scorer)
        i = extra["identification"]
        tables.append(Table("Identification", ("measure", "value"),
                            [("gallery identities", i["gallery_identities"]), ("rank-1 (closed set)", i["rank1"]),
                             *((f"DIR at FAR {f}", v) for f, v in i["dir"].items())]))
    notes = [f"scorer: {scorer.name}", f"pairs: {pairs_file} ({len(pairs)} pairs)"]
    m = verification_report(scores, labels, out, title="Face verification", extra_metrics=extra, notes=notes,
                            tables=tables)
    return m


def identify(root: str | Path, scorer: FaceScorer, enrolled_fraction: float = 0.5, gallery_per_identity: int = 1,
             fars: Sequence[float] = (0.01, 0.1)) -> dict[str, Any]:
    """Enrol the first half of the identities (sorted) with their first image(s); every other image is a
    probe. Closed-set rank-1 over the enrolled people's probes; open-set DIR at each FAR over all probes."""
    ids = read_identities(root)
    names = list(ids)
    n_enrolled = max(1, int(round(enrolled_fraction * len(names))))
    enrolled = names[:n_enrolled]
    gallery = [(n, p) for n in enrolled for p in ids[n][:gallery_per_identity]]
    probes = [(n, p) for n in names for p in (ids[n][gallery_per_identity:] if n in enrolled else ids[n])]
    if not probes or n_enrolled == len(names):
        raise FacevoxError("identification needs enrolled and non-enrolled identities with several images", root)
    emb = scorer.embed_files([p for _, p in gallery + probes])
    if scorer.backend == "dlib":  # Euclidean model: templates by mean embedding, scored by -distance
        t_names = sorted(set(enrolled))
        t = np.stack([np.mean([emb[p] for n, p in gallery if n == m], axis=0) for m in t_names])
        pe = np.stack([emb[p] for _, p in probes])
        scores = -np.linalg.norm(pe[:, None] - t[None], axis=-1)
    else:
        t, t_names = templates(np.stack([emb[p] for _, p in gallery]), [n for n, _ in gallery])
        scores = np.stack([emb[p] for _, p in probes]) @ t.T
    probe_ids = [n for n, _ in probes]
    mated = [i for i, n in enumerate(probe_ids) if n in enrolled]
    rank1 = rank_k_accuracy(scores[mated], [probe_ids[i] for i in mated], t_names, k=1)
    dirs = {str(f): dir_at_far(scores, probe_ids, t_names, f)[0] for f in fars}
    return {"gallery_identities": n_enrolled, "probes": len(probes), "mated_probes": len(mated),
            "rank1": rank1, "dir": dirs}


def verify_photos(a: str | Path, b: str | Path, *, model: str | None = None, backend: str = "model",
                  aligned: bool = False, detector: str = "dlib", threshold: float | None = None) -> dict[str, Any]:
    """Score two photos (faces detected and aligned unless ``aligned``); decide when a threshold is known."""
    scorer = FaceScorer(model, backend, use="face verify")
    crops = []
    for path in (Path(a), Path(b)):
        image = load_image(path)
        if not aligned:
            from facevox.tasks.face.align import align_photo

            image = align_photo(image, path, detector)
        crops.append(image)
    ea, eb = scorer.embed(crops)
    score = float(scorer.score(ea, eb))
    check_finite_scores([score], [f"{a} and {b}"], scorer.where)
    thr = threshold if threshold is not None else scorer.threshold
    if thr is not None and not np.isfinite(thr):
        raise FacevoxError(f"the threshold must be a finite number, got {thr}", "--threshold")
    result: dict[str, Any] = {"a": str(a), "b": str(b), "score": score, "threshold": thr}
    if thr is not None:
        result["same"] = bool(score >= thr)
    return result
