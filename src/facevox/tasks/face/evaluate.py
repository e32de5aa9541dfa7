"""Face verification on a pairs file (LFW protocol) or an InsightFace ``.bin``, identification on a
gallery/probe split, and ``verify`` for two photos; with a trained model or dlib's pretrained one
(``backend="dlib"``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.errors import FacevoxError
from facevox.fileio import report_skipped
from facevox.image.io import load_image
from facevox.metrics import (
    VERIFICATION_FARS,
    KFoldResult,
    best_accuracy,
    far_support_warnings,
    kfold_accuracy,
    tar_at_fars,
)
from facevox.outdir import prepare_output
from facevox.report import Table, verification_report
from facevox.scores import check_finite_scores
from facevox.tasks.face.pairs import SkippedPair, pairs_folds, read_identities, read_pairs
from facevox.verification import EmbeddingStore, embed_paths, extract_images
from facevox.verification.calibration import backend_calibration
from facevox.verification.extract import check_one_process
from facevox.verification.identification import identification_protocol
from facevox.verification.scoring import index_pairs
from facevox.verification.store import model_fingerprint, store_fingerprint
from facevox.verification.verifier import Verifier

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]  # aligned uint8 crops -> (N, D) unit embeddings
FARS = VERIFICATION_FARS


class FaceScorer(Verifier):
    """Embeds aligned face crops with a model folder or dlib's model, on the shared verification
    layer (:class:`facevox.verification.verifier.Verifier`: similarity, decision, identification).

    Scores are cosine similarities (model) or minus the Euclidean distance (dlib, whose model is
    trained for a distance threshold of 0.6); higher means "same person" either way.

    Inputs that do not look like aligned crops (:mod:`facevox.tasks.face.crop_check`) are warned
    about once, or refused with ``refuse_unaligned``.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "model", precision: str = "fp32",
                 use: str = "face scoring", *, device: str = "auto", workers: int = 0, batch_size: int = 64,
                 skip_bad: bool = False, embeddings: str | Path | None = None, refuse_unaligned: bool = False) -> None:
        from facevox.tasks.face.crop_check import DLIB_CROP, CropCheck

        if backend == "auto":  # a model folder when one is given, else dlib's pretrained model
            backend = "model" if model else "dlib"
        self.backend = backend
        self.workers, self.batch_size, self.skip_bad, self.embeddings = workers, batch_size, skip_bad, embeddings
        self.size: tuple[int, int] | None = None  # crops are resized to it in the loader workers
        self.where: str | Path = f"--backend {backend}"  # what a non-finite score is blamed on
        self.threshold: float | None = None
        self._cache: dict[Path, np.ndarray] = {}
        self.crops, self.refuse_unaligned, self.crop_size = CropCheck(), refuse_unaligned, DLIB_CROP
        if backend == "dlib":
            from facevox.tasks.face.dlib_backend import DlibEmbedder

            self.embed: Embed = DlibEmbedder().embed
            self.name = "dlib face recognition ResNet (pretrained, as shipped)"
            self.similarity = "euclidean"
            self.calibration = backend_calibration("dlib")
            self.threshold = None if self.calibration is not None else -0.6  # dlib's own distance of 0.6
            self.store_key = store_fingerprint("dlib", {})
        elif backend == "model":
            if not model:
                raise FacevoxError("give --model (a model folder) or --backend dlib")
            from facevox.checkpoint import ModelFolder, read_model_folder
            from facevox.tasks.face.embed import FaceEmbedder

            # an already-read folder: an exported model's stand-in (facevox.export)
            folder = model if isinstance(model, ModelFolder) else read_model_folder(model, task="face", use=use)
            from facevox.inference_spec import FaceSpec

            self.where = folder.path
            spec = FaceSpec.from_extra(folder.extra)  # also for a folder that does not say its task
            embedder = FaceEmbedder(folder.model, spec.input_size, flip=spec.flip, precision=precision, device=device)
            self.embed = embedder.embed
            self.size = self.crop_size = embedder.input_size
            self.store_key = store_fingerprint(model_fingerprint(folder.model), embedder.settings)
            self.name = f"{folder.path} ({folder.spec['name']}, {spec.loss} loss)"
            self.threshold, self.calibration = spec.threshold, spec.calibration
        else:
            raise FacevoxError(f"unknown backend '{backend}'; valid: auto, model, dlib", "--backend")

    def check_crops(self, items: Sequence[tuple[str, np.ndarray | None, tuple[int, int] | None]]) -> None:
        """Count the inputs that do not look like aligned crops (warned about by ``self.crops.warn()``
        once the results are out), or refuse them with ``refuse_unaligned``."""
        self.crops.add(items, self.crop_size, detect=self.backend == "dlib")
        if self.refuse_unaligned:
            self.crops.refuse()

    def embed_paths(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (n, D) of aligned crops and which were read (n,) bool (see :meth:`embed_files`)."""
        emb = self.embed_files(paths)
        ok = np.array([Path(p) in emb for p in paths], dtype=bool)
        dim = next(iter(emb.values())).shape[-1] if emb else 1
        out = np.zeros((len(paths), dim), dtype=np.float64)
        for i, p in enumerate(paths):
            if ok[i]:
                out[i] = emb[Path(p)]
        return out, ok

    def embed_files(self, paths: Sequence[Path], progress: bool = True) -> dict[Path, np.ndarray]:
        """Embeddings of aligned crops, each decoded and embedded once per scorer (pairs and
        identification on the same folder share them) and read from / added to the store
        ``embeddings`` when the scorer has one. Decoding and resizing run in DataLoader workers;
        crops are embedded ``batch_size`` at a time. Files skipped with ``skip_bad`` are absent."""
        unique = list(dict.fromkeys(Path(p) for p in paths))
        todo = [p for p in unique if p not in self._cache]
        if todo:
            from facevox.tasks.face.crop_check import header_sizes

            self.check_crops(header_sizes(todo))
            store = None
            if self.embeddings is not None:
                store = EmbeddingStore.open(self.embeddings, self.store_key, {"scorer": self.name},
                                            where="--embeddings")

            def extract(raw: np.ndarray, sink) -> list:
                return extract_images(raw, self.embed, sink, size=self.size, workers=self.workers,
                                      batch_size=self.batch_size, skip_bad=self.skip_bad,
                                      progress=progress and len(todo) > 200)

            emb, ok, bad = embed_paths(todo, extract, store)
            report_skipped(bad, "image")
            for p, e, good in zip(todo, emb, ok, strict=True):
                if good:
                    self._cache[p] = e
        return {p: self._cache[p] for p in unique if p in self._cache}


def fold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[KFoldResult, str]:
    """K-fold accuracy over the fold ids ``folds`` and a line saying how each threshold was chosen.

    With one fold there is nothing to hold out: the accuracy is the best accuracy over thresholds
    on that same fold (an optimistic figure, said so in the line)."""
    if len(np.unique(folds)) >= 2:
        return kfold_accuracy(scores, labels, folds), "threshold of each fold chosen on the other folds"
    acc, thr = best_accuracy(scores, labels)
    return (KFoldResult(acc, 0.0, np.array([acc]), np.array([thr])),
            "1 fold: the threshold is chosen on the same fold (best accuracy, optimistic; no held-out fold)")


def verification_outputs(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, out: str | Path,
                         scorer: FaceScorer, notes: list[str], extra: dict[str, Any] | None = None,
                         tables: Sequence[Table] = ()) -> dict[str, Any]:
    """The face-verification report of scored pairs: k-fold accuracy (K = the distinct ``folds``),
    EER, ROC-AUC, TAR@FAR in OUT (metrics.json, report.html, plots); TAR@FAR from fewer than 10/FAR
    non-target pairs is warned about on stderr and in ``warnings``."""
    k, how = fold_accuracy(scores, labels, folds)
    n_folds = len(k.accuracies)
    tars = tar_at_fars(scores, labels, FARS)
    extra = {"kfold_accuracy": k.mean, "kfold_std": k.std, "n_folds": n_folds,
             "protocol": f"{n_folds}-fold accuracy; {how}",
             **{f"tar_at_far_{f:g}": t for f, t in tars.items()}, **(extra or {})}
    warnings = far_support_warnings(int(np.sum(labels == 0)), FARS)
    crops = [scorer.crops.message()] if getattr(scorer, "crops", None) and scorer.crops.unaligned else []
    if warnings or crops:
        extra["warnings"] = [*crops, *warnings]
    caption = ("Accuracy per fold (threshold chosen on the other folds)" if n_folds > 1
               else "Accuracy of the single fold (threshold chosen on the same fold)")
    tables = [Table(caption, ("fold", "accuracy", "threshold"),
                    [(i + 1, a, t) for i, (a, t) in enumerate(zip(k.accuracies, k.thresholds, strict=True))]),
              *tables]
    notes = [*notes, f"protocol: {extra['protocol']}"]
    m = verification_report(scores, labels, out, title="Face verification", extra_metrics=extra, notes=notes,
                            tables=tables)
    if crops:  # after the results are written: an error before then stays the only line
        scorer.crops.warn()
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return m


def evaluate_pairs(pairs_file: str | Path, root: str | Path, out: str | Path, scorer: FaceScorer,
                   identify_root: str | Path | None = None, skip_missing: bool = False,
                   cohort: str | Path | None = None, asnorm_top_k: int = 0) -> dict[str, Any]:
    """K-fold accuracy (K from the pairs file's header; each threshold from the other folds, or from
    the same fold when there is one), EER, ROC-AUC, TAR@FAR; report in OUT (:func:`verification_outputs`).
    ``skip_missing``: pairs naming a missing image are left out, counted on stderr and listed in
    metrics.json (``skipped_pairs``) instead of stopping. ``cohort`` (a folder per identity) and
    ``asnorm_top_k`` > 0: scores are AS-norm normalised against the cohort's identity templates."""
    check_one_process("face")
    if (cohort is None) != (asnorm_top_k <= 0):
        raise FacevoxError("AS-norm needs both a cohort folder and a top k", "--cohort" if cohort else "--asnorm-top-k")
    if cohort is not None:
        scorer.check_as_norm()
    prepare_output(out)  # a wrong --out fails now, not after the embedding
    missing: list[SkippedPair] | None = [] if skip_missing else None
    pairs = read_pairs(pairs_file, root, skipped=missing)
    file_folds = pairs_folds(pairs_file)
    if missing:
        print(f"left out {len(missing)} of {len(missing) + len(pairs)} pairs naming a missing image "
              "(listed in metrics.json: skipped_pairs)", file=sys.stderr)
        if not pairs:
            raise FacevoxError("every pair names a missing image", pairs_file)
    emb = scorer.embed_files([p.a for p in pairs] + [p.b for p in pairs])
    kept = [p for p in pairs if p.a in emb and p.b in emb]
    if len(kept) < len(pairs):
        print(f"left out {len(pairs) - len(kept)} of {len(pairs)} pairs with a skipped image", file=sys.stderr)
        if not kept:
            raise FacevoxError("no pair is left after skipping the bad images", pairs_file)
        pairs = kept
    scores = scorer.score(np.stack([emb[p.a] for p in pairs]), np.stack([emb[p.b] for p in pairs]))
    check_finite_scores(scores, [f"{p.a} and {p.b}" for p in pairs], scorer.where)
    labels = np.array([p.same for p in pairs], dtype=int)
    folds = np.array([p.fold for p in pairs])
    extra: dict[str, Any] = {"pairs_file_folds": file_folds}
    if cohort is not None:
        names, ia, ib = index_pairs([p.a for p in pairs], [p.b for p in pairs])
        templates = scorer.cohort(read_identities(cohort), cohort)
        if asnorm_top_k > len(templates):
            raise FacevoxError(f"top k {asnorm_top_k} is more than the cohort's {len(templates)} identities",
                               "--asnorm-top-k")
        scores = scorer.as_norm(scores, np.stack([emb[n] for n in names]), ia, ib, templates, asnorm_top_k)
        extra["asnorm"] = {"cohort": str(cohort), "cohort_identities": len(templates), "top_k": asnorm_top_k}
    if missing is not None:
        extra["skipped_pairs"] = [{"line": s.line, "pair": s.text, "missing": s.missing} for s in missing]
    tables = []
    if identify_root:
        extra["identification"] = identify(identify_root, scorer)
        i = extra["identification"]
        tables.append(Table("Identification", ("measure", "value"),
                            [("gallery identities", i["gallery_identities"]), ("rank-1 (closed set)", i["rank1"]),
                             *((("rank-5 (closed set)", i["rank5"]),) if "rank5" in i else ()),
                             *((f"DIR at FAR {f}", v) for f, v in i["dir"].items())]))
    notes = [f"scorer: {scorer.name}", f"pairs: {pairs_file} ({len(pairs)} pairs, {file_folds} fold"
             f"{'s' if file_folds > 1 else ''} in the file)"]
    return verification_outputs(scores, labels, folds, out, scorer, notes, extra, tables)


def identify(root: str | Path, scorer: FaceScorer, enrolled_fraction: float = 0.5, gallery_per_identity: int = 1,
             fars: Sequence[float] = (0.01, 0.1)) -> dict[str, Any]:
    """Enrol the first half of the identities (sorted) with their first image(s); every other image is a
    probe (:func:`facevox.verification.identification.identification_protocol`): closed-set rank-1 and
    rank-5 over the enrolled people's probes, open-set DIR at each FAR over all probes."""
    return identification_protocol(scorer, read_identities(root), root, enrolled_fraction, gallery_per_identity,
                                   fars)


def verify_photos(a: str | Path, b: str | Path, *, model: str | None = None, backend: str = "model",
                  aligned: bool = False, detector: str = "dlib", threshold: float | None = None,
                  device: str = "auto", precision: str = "fp32", refuse_unaligned: bool = False) -> dict[str, Any]:
    """Score two photos (faces detected and aligned unless ``aligned``); decide when a threshold is known.
    With ``aligned``, crops that do not look aligned are warned about (or refused: ``refuse_unaligned``)."""
    scorer = FaceScorer(model, backend, precision=precision, use="face verify", device=device,
                        refuse_unaligned=refuse_unaligned)
    crops = []
    for path in (Path(a), Path(b)):
        image = load_image(path)
        if not aligned:
            from facevox.tasks.face.align import align_photo

            image = align_photo(image, path, detector)
        crops.append(image)
    if aligned:
        scorer.check_crops([(str(p), c, c.shape[:2]) for p, c in zip((a, b), crops, strict=True)])
    ea, eb = scorer.embed(crops)
    score = float(scorer.score(ea, eb))
    check_finite_scores([score], [f"{a} and {b}"], scorer.where)
    if threshold is not None:
        if not np.isfinite(threshold):
            raise FacevoxError(f"the threshold must be a finite number, got {threshold}", "--threshold")
        scorer.threshold = float(threshold)
    decision = scorer.decide(score)
    scorer.crops.warn()
    return {"a": str(a), "b": str(b), "threshold": None, **decision}


def embed_source(source: str | Path, out: str | Path, *, model: str | Path | None = None, backend: str = "model",
                 device: str = "auto", precision: str = "fp32", workers: int = 0, batch_size: int = 64,
                 skip_bad: bool = False, refuse_unaligned: bool = False) -> dict[str, Any]:
    """Embed every aligned crop of ``source`` (folder, manifest or list) into the store ``out``;
    images already stored (same model and settings, unchanged files) are not embedded again."""
    from facevox.image.io import IMAGE_EXTENSIONS, list_image_files
    from facevox.verification.sources import read_source

    files = list(dict.fromkeys(read_source(source, list_image_files, IMAGE_EXTENSIONS, "image")))
    scorer = FaceScorer(model, backend, precision=precision, use="face embed", device=device, workers=workers,
                        batch_size=batch_size, skip_bad=skip_bad, embeddings=out, refuse_unaligned=refuse_unaligned)
    EmbeddingStore.open(out, scorer.store_key, where="--out")  # a foreign folder fails before any work
    emb = scorer.embed_files(files)
    scorer.crops.warn()
    return {"files": len(files), "embedded": len(emb), "store": str(out)}
