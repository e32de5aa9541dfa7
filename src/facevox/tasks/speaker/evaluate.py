"""Evaluating and using speaker models: ``facevox speaker eval`` and ``facevox speaker verify``.

A scorer is a facevox model folder (embedding, Siamese or pair model) or a pretrained backend
(``resemblyzer``); all of them score the same trial lists and write the same report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.audio.features import fixed_windows
from facevox.audio.io import load_audio
from facevox.checkpoint import ModelFolder, read_model_folder
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text, report_skipped
from facevox.inference_spec import SpeakerSpec
from facevox.metrics import VERIFICATION_FARS, cllr, far_support_warnings, kfold_accuracy
from facevox.outdir import output_dir, prepare_output
from facevox.report import Table, verification_report
from facevox.scores import check_finite_scores
from facevox.tasks.speaker.corpus import Trial, read_corpus, read_trials
from facevox.tasks.speaker.scoring import (
    MIN_SCORING_SECONDS,
    WaveEmbedder,
    default_store,
    extractor,
    model_fingerprint,
    resolve,
    store_fingerprint,
)
from facevox.verification import (
    EmbeddingStore,
    cosine_pairs,
    embed_paths,
    index_pairs,
    unit,
)
from facevox.verification.calibration import Calibration, backend_calibration
from facevox.verification.extract import check_one_process
from facevox.verification.identification import identification_protocol
from facevox.verification.verifier import Verifier

SAMPLE_RATE = 16000
BACKENDS = ("auto", "model", "resemblyzer")
KFOLDS = 10  # k-fold accuracy of a trial list: trial i in fold i mod 10 (interleaved, as lists are often sorted)


class ResemblyzerEmbedder:
    """Resemblyzer's pretrained encoder as it ships: its own preprocessing (volume, VAD trim) and
    its partial-utterance averaging (``VoiceEncoder.embed_utterance``)."""

    def __init__(self) -> None:
        import warnings

        try:
            with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources; resemblyzer, old scipy
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as err:
            raise FacevoxError(f'the resemblyzer backend needs the package: pip install "facevox[speaker-baseline]" '
                               f"({err})",
                               "--backend") from None
        self.encoder = VoiceEncoder("cpu", verbose=False)
        self.preprocess = preprocess_wav
        self.name = "resemblyzer (pretrained, as shipped)"

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        trimmed = self.preprocess(wave, source_sr=SAMPLE_RATE)
        if len(trimmed) < SAMPLE_RATE // 4:  # VAD removed nearly everything: use the raw wave
            trimmed = wave
        return self.encoder.embed_utterance(trimmed).astype(np.float32)


class PairScorer:
    """The pair classifier on whole utterances: mean logit over all pairs of up to ``max_windows``
    windows per side, spread evenly over each utterance (max_windows**2 forward passes a trial)."""

    def __init__(self, model: torch.nn.Module, crop_samples: int, max_windows: int = 2) -> None:
        self.model, self.crop, self.max_windows = model.eval(), crop_samples, max_windows

    def _windows(self, wave: np.ndarray) -> np.ndarray:
        w = fixed_windows(wave, self.crop, self.crop // 2)
        return w[np.unique(np.linspace(0, len(w) - 1, self.max_windows).round().astype(int))]

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        wa, wb = self._windows(a), self._windows(b)
        ia, ib = np.meshgrid(np.arange(len(wa)), np.arange(len(wb)), indexing="ij")
        x = torch.from_numpy(np.stack([wa[ia.ravel()], wb[ib.ravel()]], axis=1).astype(np.float32))
        return float(self.model(x).float().mean())


class SpeakerScorer(Verifier):
    """A speaker model folder or a pretrained backend on the shared verification layer: decoding
    and the network are the speaker task's; scoring, AS-norm, the decision and identification are
    :class:`facevox.verification.verifier.Verifier`'s. A pair classifier scores waves directly.
    ``vad``: each decoded wave is trimmed to its speech by silero-vad first (:mod:`facevox.audio.vad`).
    ``min_seconds``: shorter recordings are an error (skipped with ``skip_bad``); recordings under
    :data:`~facevox.tasks.speaker.scoring.PAD_SECONDS` that it allows are tiled up to it before embedding."""

    def __init__(self, model: str | Path | None = None, backend: str = "model", use: str = "speaker scoring", *,
                 device: str = "auto", precision: str = "fp32", workers: int = 0, batch_size: int = 32,
                 skip_bad: bool = False, vad: bool = False, min_seconds: float = MIN_SCORING_SECONDS) -> None:
        if not (min_seconds > 0 and np.isfinite(min_seconds)):
            raise FacevoxError(f"must be a number > 0, got {min_seconds}", "--min-seconds")
        self.workers, self.batch_size, self.skip_bad = workers, batch_size, skip_bad
        self.min_seconds = float(min_seconds)
        self.vad = bool(vad)
        self._init_scorer(model, backend, use, device, precision)
        if self.vad:  # trimmed waves give other embeddings: another store key (a missing package fails here)
            from facevox.audio.vad import vad_settings

            settings = getattr(getattr(self, "embed", None), "settings", {})
            self.store_key = store_fingerprint(self.fingerprint, {**settings, **vad_settings()})
            self.name += " + silero-vad trim"

    def _init_scorer(self, model: str | Path | None, backend: str, use: str, device: str, precision: str) -> None:
        if backend == "auto":  # a model folder when one is given, else the pretrained encoder
            backend = "model" if model is not None else "resemblyzer"
        if backend not in BACKENDS:
            raise FacevoxError(f"unknown backend '{backend}'; valid: {', '.join(BACKENDS)}", "--backend")
        self.calibration: Calibration | None = None
        self.kind = "embedding"
        self.where: str | Path = f"--backend {backend}"  # what a non-finite score is blamed on
        if backend == "resemblyzer":
            self.embed = ResemblyzerEmbedder()
            self.name, self.fingerprint = self.embed.name, "resemblyzer"
            self.store_key = store_fingerprint("resemblyzer", {})
            self.calibration = backend_calibration("resemblyzer")
            return
        if model is None:
            raise FacevoxError("give a model folder (--model) or a pretrained backend (--backend resemblyzer)",
                               "--model")
        # an already-read folder: an exported model's stand-in (facevox.export)
        folder = model if isinstance(model, ModelFolder) else read_model_folder(model, task="speaker", use=use)
        spec = SpeakerSpec.from_extra(folder.extra, folder.config)  # also for a folder that does not say its task
        self.where = folder.path
        self.kind = spec.kind
        self.name = f"{Path(folder.path).name} ({folder.spec['kwargs'].get('backbone', folder.spec['name'])})"
        self.fingerprint = model_fingerprint(folder.model)
        self.calibration = spec.calibration
        if self.kind == "pair":
            self.pair = PairScorer(folder.model, spec.crop_samples)
        else:
            self.embed = WaveEmbedder(folder.model, window_seconds=spec.window_seconds, max_seconds=spec.max_seconds,
                                      device=device, precision=precision)
        self.store_key = store_fingerprint(self.fingerprint, getattr(getattr(self, "embed", None), "settings", {}))

    def store(self, cache: bool = True, embeddings: str | Path | None = None) -> EmbeddingStore | None:
        """The store embeddings are read from and added to: ``embeddings`` if given, else the default
        cache (``cache``), else none (everything embedded in memory)."""
        if embeddings is not None:
            return EmbeddingStore.open(embeddings, self.store_key, {"scorer": self.name}, where="--embeddings")
        return default_store(self.store_key) if cache else None

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """A decoded wave as it is embedded: trimmed to its speech when ``vad`` is on."""
        if not self.vad:
            return wave
        from facevox.audio.vad import trim_silence

        return trim_silence(wave, SAMPLE_RATE, min(self.min_seconds, MIN_SCORING_SECONDS))

    def embed_paths(self, paths: Sequence[Path], store: EmbeddingStore | None = None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings (n, D) of audio files and which were read (n,) bool; skipped files are listed."""
        embed = (lambda wave: self.embed(self.prepare(wave))) if self.vad else self.embed
        extract = extractor(embed, min_seconds=self.min_seconds, workers=self.workers, batch_size=self.batch_size,
                            skip_bad=self.skip_bad, progress=progress)
        emb, ok, bad = embed_paths(list(paths), extract, store)
        report_skipped(bad, "audio file")
        return emb, ok

    def score_pairs(self, trials: Sequence[Trial], root: Path, cohort: np.ndarray | None = None,
                    asnorm_top_k: int = 0, cache: bool = True, embeddings: str | Path | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the trials and which were scored (False: a side was skipped as a bad file).

        Each file is embedded once (or read from the store); trials become row pairs into the
        unique embeddings, scored in chunks; AS-norm statistics are computed once per file."""
        names, ia, ib = index_pairs([t.a for t in trials], [t.b for t in trials])
        files = [resolve(root, n) for n in names]
        if self.kind == "pair":
            waves = {f: self.prepare(load_audio(f, SAMPLE_RATE, self.min_seconds)) for f in files}
            return (np.array([self.pair(waves[files[a]], waves[files[b]]) for a, b in zip(ia, ib, strict=True)]),
                    np.ones(len(trials), dtype=bool))
        emb, ok = self.embed_paths(files, self.store(cache, embeddings))
        kept = ok[ia] & ok[ib]
        scores = cosine_pairs(emb, ia, ib)
        if asnorm_top_k > 0:
            if cohort is None:
                raise FacevoxError("AS-norm needs a cohort (--cohort FOLDER)", "--asnorm-top-k")
            scores = self.as_norm(scores, emb, ia, ib, cohort, asnorm_top_k)
        return scores, kept

    def score_trials(self, trials: Sequence[Trial], root: Path, cohort: np.ndarray | None = None,
                     asnorm_top_k: int = 0, cache: bool = True, embeddings: str | Path | None = None) -> np.ndarray:
        return self.score_pairs(trials, root, cohort, asnorm_top_k, cache, embeddings)[0]

    def cohort_embeddings(self, cohort: Path, cache: bool = True, embeddings: str | Path | None = None) -> np.ndarray:
        """Per-speaker mean embeddings of a cohort corpus (C, D)."""
        if self.kind == "pair":
            raise FacevoxError("AS-norm needs an embedding model, not a pair classifier", "--cohort")
        corpus = read_corpus(cohort)
        emb, ok = self.embed_paths([u.path for u in corpus.utterances], self.store(cache, embeddings))
        labels, names = corpus.labels()
        sums = np.zeros((len(names), emb.shape[1]))
        np.add.at(sums, labels[ok], unit(emb[ok].astype(np.float64)))
        counts = np.bincount(labels[ok], minlength=len(names))
        return unit(sums[counts > 0] / counts[counts > 0, None])

    def verify(self, a: Path, b: Path) -> dict[str, Any]:
        """Score two recordings and decide: ``score``, and when known ``same``, ``threshold``,
        ``p_same`` and ``llr`` (:meth:`Verifier.decide`)."""
        wa, wb = (load_audio(f, SAMPLE_RATE, self.min_seconds) for f in (a, b))
        return self.verify_waves(wa, wb, f"{a} and {b}")

    def verify_waves(self, wa: np.ndarray, wb: np.ndarray, what: str = "the two waveforms") -> dict[str, Any]:
        """:meth:`verify` of two waveforms (T,) at 16 kHz; ``what`` names them in an error."""
        wa, wb = self.prepare(wa), self.prepare(wb)
        score = self.pair(wa, wb) if self.kind == "pair" else float(unit(self.embed(wa)) @ unit(self.embed(wb)))
        check_finite_scores([score], [what], self.where)
        if self.kind == "pair" and self.calibration is None:  # the classifier's own decision: logit > 0
            return {"score": score, "same": bool(score >= 0.0), "threshold": 0.0,
                    "p_same": float(1 / (1 + np.exp(-score)))}
        return self.decide(score)


def evaluate(trials_path: Path, audio_root: Path | None, out: Path, *, model: str | Path | None = None,
             backend: str = "model", cohort: Path | None = None, asnorm_top_k: int = 0,
             cache: bool = True, embeddings: str | Path | None = None, device: str = "auto",
             precision: str = "fp32", workers: int = 0, batch_size: int = 32,
             skip_bad: bool = False, vad: bool = False, min_seconds: float = MIN_SCORING_SECONDS,
             identify: Path | None = None) -> dict[str, Any]:
    """Score a trial list and write metrics.json, plots, scores.txt and report.html to ``out``; with
    ``identify`` (a corpus folder), also closed- and open-set identification on it
    (:func:`facevox.verification.identification.identification_protocol`)."""
    check_one_process("speaker")
    if cohort is not None and asnorm_top_k <= 0:
        raise FacevoxError("a cohort is only used by AS-norm: give --asnorm-top-k too", "--cohort")
    if asnorm_top_k > 0 and cohort is None:
        raise FacevoxError("AS-norm needs a cohort (--cohort FOLDER)", "--asnorm-top-k")
    prepare_output(out)  # a wrong --out fails now, not after the scoring
    trials = read_trials(trials_path)
    root = Path(audio_root) if audio_root is not None else Path(trials_path).parent
    scorer = SpeakerScorer(model, backend, use="speaker eval", device=device, precision=precision, workers=workers,
                           batch_size=batch_size, skip_bad=skip_bad, vad=vad, min_seconds=min_seconds)
    if identify is not None and scorer.kind == "pair":
        raise FacevoxError("identification needs an embedding model, not a pair classifier", "--identify")
    if asnorm_top_k > 0 and scorer.kind == "pair":
        raise FacevoxError("AS-norm needs an embedding model, not a pair classifier", "--asnorm-top-k")
    if embeddings is not None and scorer.kind == "pair":
        raise FacevoxError("a pair classifier scores waves, not stored embeddings", "--embeddings")
    cohort_emb = scorer.cohort_embeddings(cohort, cache, embeddings) if cohort is not None else None
    scores, kept = scorer.score_pairs(trials, root, cohort_emb, asnorm_top_k, cache, embeddings)
    if not kept.all():
        print(f"left out {int((~kept).sum())} of {len(trials)} trials with a skipped file", file=sys.stderr)
        trials = [t for t, k in zip(trials, kept, strict=True) if k]
        scores = scores[kept]
        if not trials:
            raise FacevoxError("no trial is left after skipping the bad files", trials_path)
    check_finite_scores(scores, [f"{t.a} and {t.b}" for t in trials], scorer.where)
    labels = np.array([t.label for t in trials], dtype=np.int8)
    extra: dict[str, Any] = {"scorer": scorer.name, "n_trials": len(trials)}
    notes = [f"Scorer: {scorer.name}.", f"Trials: {trials_path} (audio under {root})."]
    if asnorm_top_k > 0:
        extra["asnorm"] = {"cohort": str(cohort), "cohort_speakers": len(cohort_emb), "top_k": asnorm_top_k}
        notes.append(f"AS-norm with a cohort of {len(cohort_emb)} speakers, top {asnorm_top_k}.")
    if scorer.calibration is not None and asnorm_top_k == 0:
        cal = scorer.calibration
        accept = scores >= cal.threshold
        extra["threshold"] = cal.threshold
        extra["calibration"] = {"target_far": cal.target_far, "trials": cal.n_target + cal.n_nontarget}
        extra["far_at_threshold"] = float(np.mean(accept[labels == 0]))
        extra["frr_at_threshold"] = float(np.mean(~accept[labels == 1]))
        extra["cllr"] = cllr(cal.llr(scores), labels) if 0 < labels.sum() < len(labels) else float("nan")
        notes.append(f"Stored threshold {cal.threshold:.4f} was chosen for FAR {cal.target_far:g} on "
                     f"{cal.n_target + cal.n_nontarget} held-out trials; "
                     "cllr measures the calibration (lower is better).")
    tables = []
    if len(trials) >= 2 * KFOLDS and 0 < labels.sum() < len(labels):
        k = kfold_accuracy(scores, labels, np.arange(len(trials)) % KFOLDS)
        extra.update({"kfold_accuracy": k.mean, "kfold_std": k.std, "n_folds": KFOLDS,
                      "kfold_accuracies": k.accuracies.tolist(), "kfold_thresholds": k.thresholds.tolist()})
        tables.append(Table(f"Accuracy per fold (trial i in fold i mod {KFOLDS}; threshold chosen on the other folds)",
                            ("fold", "accuracy", "threshold"),
                            [(i + 1, a, t) for i, (a, t) in enumerate(zip(k.accuracies, k.thresholds, strict=True))]))
    if identify is not None:
        corpus = read_corpus(identify)
        groups: dict[str, list[Path]] = {}
        for u in corpus.utterances:
            groups.setdefault(u.speaker, []).append(Path(u.path))
        i = extra["identification"] = identification_protocol(scorer, {s: sorted(p) for s, p in groups.items()},
                                                                identify)
        tables.append(Table("Identification (first half of the speakers enrolled with one recording each)",
                            ("measure", "value"),
                            [("gallery speakers", i["gallery_identities"]), ("probes", i["probes"]),
                             *((f"rank-{r} (closed set)", i[f"rank{r}"]) for r in (1, 5) if f"rank{r}" in i),
                             *((f"DIR at FAR {f}", v) for f, v in i["dir"].items())]))
    warnings = far_support_warnings(int(np.sum(labels == 0)), VERIFICATION_FARS)
    if warnings:
        extra["warnings"] = warnings
    with output_dir(out, "speaker eval") as staged:  # scores.txt and the report as one unit
        atomic_write_text(staged / "scores.txt", "".join(f"{t.a} {t.b} {s:.6f} {'target' if t.label else 'nontarget'}\n"
                                                         for t, s in zip(trials, scores, strict=True)))
        metrics = verification_report(scores, labels, staged, title=f"Speaker verification: {scorer.name}",
                                      extra_metrics=extra, notes=notes, tables=tables)
    for w in warnings:  # after the results are written: an error before then stays the only line
        print(f"warning: {w}", file=sys.stderr)
    print(f"EER {100 * metrics['eer']:.2f}%  minDCF(0.01) {metrics['min_dcf_0.01']:.4f}  "
          f"({metrics['n_target']} target, {metrics['n_nontarget']} non-target trials)", file=sys.stdout)
    if "kfold_accuracy" in metrics:
        print(f"{KFOLDS}-fold accuracy {100 * metrics['kfold_accuracy']:.2f}% +- {100 * metrics['kfold_std']:.2f}")
    if "identification" in metrics:
        i = metrics["identification"]
        ranks = "  ".join(f"rank-{r} {100 * i[f'rank{r}']:.2f}%" for r in (1, 5) if f"rank{r}" in i)
        dirs = "  ".join(f"DIR@FAR={f} {100 * v:.2f}%" for f, v in i["dir"].items())
        print(f"identification: {ranks}  {dirs}")
    return metrics


def embed_source(source: str | Path, out: str | Path, *, model: str | Path | None = None, backend: str = "model",
                 device: str = "auto", precision: str = "fp32", workers: int = 0, batch_size: int = 32,
                 skip_bad: bool = False, vad: bool = False, min_seconds: float = MIN_SCORING_SECONDS) -> dict[str, Any]:
    """Embed every audio file of ``source`` (folder, manifest or list) into the store ``out``.

    Files already in the store (same model and settings, unchanged size and mtime) are not embedded
    again; new ones go into a new part. Returns counts."""
    from facevox.audio.io import AUDIO_EXTENSIONS, list_audio_files
    from facevox.verification.sources import read_source

    files = list(dict.fromkeys(read_source(source, list_audio_files, AUDIO_EXTENSIONS, "audio")))
    scorer = SpeakerScorer(model, backend, use="speaker embed", device=device, precision=precision, workers=workers,
                           batch_size=batch_size, skip_bad=skip_bad, vad=vad, min_seconds=min_seconds)
    if scorer.kind == "pair":
        raise FacevoxError("a pair classifier has no embeddings to store", "--model")
    store = EmbeddingStore.open(out, scorer.store_key, {"scorer": scorer.name}, where="--out")
    before = int((store.lookup(files) >= 0).sum())
    _, ok = scorer.embed_paths(files, store)
    return {"files": len(files), "embedded": int(ok.sum()), "new": int(ok.sum()) - before, "store": str(out)}
