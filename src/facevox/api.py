"""The public inference API: ``facevox.load(path_or_backend)`` returns the object of the task::

    import facevox

    sv = facevox.load("resemblyzer")                 # or a speaker model folder
    score, same, p_same = sv.verify("a.wav", "b.wav")
    emb = sv.embed(["a.wav", "b.wav"])               # (2, D) unit embeddings

    fv = facevox.load("dlib")                        # or a face model folder
    score, same, p_same = fv.verify("a.jpg", "b.jpg")
    fv.identify("probe.jpg", {"alice": ["alice1.jpg"], "bob": ["bob1.jpg"]})

    det = facevox.load("runs/fakeface/model")        # FakeFaceDetector
    det.predict(["face.png"])                        # [{"path", "label", "confidence", "p_fake"}]

    inv = facevox.load("runs/invert/model")          # Inverter (a trained encoder)
    result = inv.invert(["face.png"], method="hybrid")

A model folder says its task in ``model.yaml``; the pretrained backends are named
(:data:`BACKENDS`). They ship with a threshold and a calibration facevox fitted (their model
cards: ``docs/model_cards/``), so ``verify`` decides with no training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from facevox.errors import FacevoxError

BACKENDS = {"resemblyzer": "speaker", "dlib": "face", "griffinlim": "vocoder"}


class Decision(NamedTuple):
    """What ``verify`` answers: the score (higher = more alike), the decision at the threshold
    (None when the model has none) and the calibrated P(same) at prior 0.5 (None without a
    calibration)."""

    score: float
    same: bool | None
    p_same: float | None


def _decision(d: Mapping[str, Any]) -> Decision:
    return Decision(float(d["score"]), d.get("same"), d.get("p_same"))


def _paths(items: str | Path | Sequence[str | Path]) -> tuple[list[Path], bool]:
    """A list of paths, and whether one path (not a list) was given."""
    if isinstance(items, (str, Path)):
        return [Path(items)], True
    return [Path(p) for p in items], False


class SpeakerVerifier:
    """Speaker verification with a facevox speaker model folder or the ``resemblyzer`` backend.

    Recordings are files (any format facevox reads, resampled to 16 kHz) or float waveforms (T,)
    at 16 kHz. ``scorer`` is the task's :class:`~facevox.tasks.speaker.evaluate.SpeakerScorer`."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    @property
    def threshold(self) -> float | None:
        """The decision threshold on the score (None when the model has none)."""
        if self.scorer.kind == "pair" and self.scorer.calibration is None:
            return 0.0
        return self.scorer.decide(0.0).get("threshold")

    def _wave(self, x: str | Path | np.ndarray) -> np.ndarray:
        from facevox.audio.io import load_audio
        from facevox.tasks.speaker.scoring import MIN_SCORING_SECONDS, SAMPLE_RATE

        if isinstance(x, np.ndarray):
            if x.ndim != 1 or len(x) < MIN_SCORING_SECONDS * SAMPLE_RATE:
                raise FacevoxError(f"a waveform must be (T,) float at 16 kHz and last at least "
                                   f"{MIN_SCORING_SECONDS} s, got shape {x.shape}", "waveform")
            return np.asarray(x, dtype=np.float32)
        return load_audio(x, SAMPLE_RATE, MIN_SCORING_SECONDS)

    def verify(self, a: str | Path | np.ndarray, b: str | Path | np.ndarray) -> Decision:
        """Same speaker? ``(score, same, p_same)``."""
        names = [str(x) if not isinstance(x, np.ndarray) else "waveform" for x in (a, b)]
        return _decision(self.scorer.verify_waves(self._wave(a), self._wave(b), " and ".join(names)))

    def embed(self, items: str | Path | np.ndarray | Sequence[str | Path | np.ndarray]) -> np.ndarray:
        """Unit embeddings: (D,) for one recording, (N, D) for a list."""
        if self.scorer.kind == "pair":
            raise FacevoxError("a pair classifier has no embeddings; use verify(a, b)", self.scorer.where)
        one = isinstance(items, (str, Path)) or (isinstance(items, np.ndarray) and items.ndim == 1)
        seq = [items] if one else list(items)
        emb = np.stack([self.scorer.embed(self._wave(x)) for x in seq]).astype(np.float32)
        return emb[0] if one else emb


class FaceVerifier:
    """Face verification and identification with a facevox face model folder or ``dlib``.

    Photos are detected and aligned first (``aligned=False``, the default: dlib's detector, or
    ``detector="haar"``); give ``aligned=True`` for face crops. ``scorer`` is the task's
    :class:`~facevox.tasks.face.evaluate.FaceScorer`."""

    def __init__(self, scorer: Any, aligned: bool = False, detector: str = "dlib") -> None:
        self.scorer, self.aligned, self.detector = scorer, aligned, detector

    @property
    def threshold(self) -> float | None:
        return self.scorer.decide(0.0).get("threshold")

    def _crops(self, paths: Sequence[Path]) -> list[np.ndarray]:
        from facevox.image.io import load_image

        crops = []
        for p in paths:
            image = load_image(p)
            if not self.aligned:
                from facevox.tasks.face.align import align_photo

                image = align_photo(image, p, self.detector)
            crops.append(image)
        return crops

    def embed(self, items: str | Path | Sequence[str | Path]) -> np.ndarray:
        """Embeddings: (D,) for one photo, (N, D) for a list (unit length for facevox models)."""
        paths, one = _paths(items)
        emb = np.asarray(self.scorer.embed(self._crops(paths)))
        return emb[0] if one else emb

    def verify(self, a: str | Path, b: str | Path) -> Decision:
        """Same person? ``(score, same, p_same)``."""
        from facevox.scores import check_finite_scores

        ea, eb = self.embed([a, b])
        score = float(self.scorer.score(ea, eb))
        check_finite_scores([score], [f"{a} and {b}"], self.scorer.where)
        return _decision(self.scorer.decide(score))

    def identify(self, probe: str | Path | Sequence[str | Path],
                 gallery: str | Path | Mapping[str, Sequence[str | Path]], k: int = 1
                 ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The ``k`` best gallery identities of a probe (or of each probe of a list), best first, as
        ``(identity, score)``. ``gallery``: ``{identity: [photos]}`` or a folder per identity."""
        from facevox.tasks.face.pairs import read_identities

        ids = read_identities(gallery) if isinstance(gallery, (str, Path)) else {n: list(v) for n, v in gallery.items()}
        if not ids:
            raise FacevoxError("the gallery holds no identity", str(gallery) if isinstance(gallery, (str, Path))
                               else "gallery")
        owners = [n for n, files in ids.items() for _ in files]
        g = self.embed([p for files in ids.values() for p in files])
        probes, one = _paths(probe)
        found = self.scorer.identify_embeddings(self.embed(probes), np.atleast_2d(g), owners, k)
        return found[0] if one else found


class FakeFaceDetector:
    """Real or GAN-generated? A fakeface model folder (``fakeface train``)."""

    def __init__(self, path: str | Path, *, device: str = "auto", precision: str = "fp32",
                 detector: Any = None) -> None:  # detector: an exported model's (facevox.export)
        from facevox.tasks.fakeface.scoring import Detector

        self.path, self.device, self.precision = Path(path), device, precision
        self.detector = detector or Detector.load(str(path), use="facevox.load", device=device, precision=precision)

    @property
    def threshold(self) -> float:
        return float(self.detector.threshold)

    def predict(self, items: str | Path | Sequence[str | Path]) -> dict[str, Any] | list[dict[str, Any]]:
        """``{"path", "label" (real/fake), "confidence", "p_fake"}`` for one image, a list for several
        (folders are searched for images)."""
        from facevox.scores import check_finite_scores
        from facevox.tasks.fakeface.data import CLASSES
        from facevox.tasks.fakeface.predict import expand_paths

        paths, one = _paths(items)
        files = expand_paths(paths)
        _, probs, _ = self.detector.score_files(files)
        check_finite_scores(probs, [f"P(fake) of {f}" for f in files], self.detector.where)
        rows = []
        for f, pf in zip(files, probs, strict=True):
            fake = bool(pf >= self.detector.threshold)
            rows.append({"path": str(f), "label": CLASSES[int(fake)], "confidence": float(pf if fake else 1 - pf),
                         "p_fake": float(pf)})
        return rows[0] if one and len(rows) == 1 else rows

    def explain(self, items: str | Path | Sequence[str | Path], out: str | Path,
                methods: Sequence[str] = ("guided_backprop", "gradcam"), target: str = "predicted") -> list[Path]:
        """Saliency figures of the images into the folder ``out`` (see ``facevox fakeface explain``)."""
        from facevox.tasks.fakeface.predict import explain_images

        if not self.path.is_dir():  # saliency needs the torch network's gradients
            raise FacevoxError("saliency maps need the model folder (an exported ONNX file has no gradients); "
                               "load the folder it was exported from", self.path)
        paths, _ = _paths(items)
        return explain_images(self.path, paths, out, methods=methods, target=target, device=self.device,
                              precision=self.precision)


class Inverter:
    """GAN inversion with a trained encoder folder (``invert train``) and its generator."""

    def __init__(self, path: str | Path, *, device: str = "auto") -> None:
        from facevox.tasks.invert.config import InvertConfig
        from facevox.tasks.invert.evaluate import setup

        self.cfg = InvertConfig()
        self.cfg.device = device
        self.path = Path(path)
        self.generator, self.features, self.encoder = setup(self.cfg, path)

    def invert(self, items: str | Path | Sequence[str | Path], method: str = "hybrid") -> Any:
        """Latents of images (or of audio clips, for an audio GAN's encoder): an ``Inversion``
        (``latents`` (N, nz), ``images`` G(z) (N, 3, H, W) in [0, 1] or waves (N, 1, T), ``seconds``);
        ``method``: optim, encoder or hybrid."""
        from facevox.tasks.invert.evaluate import generator_targets, invert

        paths, _ = _paths(items)
        targets, _ = generator_targets(self.generator, paths)
        device = next(self.generator.parameters()).device if hasattr(self.generator, "parameters") else None
        if device is not None:
            targets = targets.to(device)
        return invert(method, self.generator, targets, self.cfg, self.features, self.encoder)


def folder_task(path: Path) -> str | None:
    """The task a model folder records (``model.yaml``), else the one :mod:`facevox.checkpoint` infers."""
    from facevox.checkpoint import read_model_folder

    return read_model_folder(path).task


def load(what: str | Path, *, device: str = "auto", precision: str = "fp32", **options: Any) -> Any:
    """The inference object for a model folder or a pretrained backend's name.

    ``"resemblyzer"`` / speaker folders -> :class:`SpeakerVerifier`; ``"dlib"`` / face folders ->
    :class:`FaceVerifier` (options ``aligned``, ``detector``); fakeface folders ->
    :class:`FakeFaceDetector`; invert encoder folders -> :class:`Inverter`; ``"griffinlim"`` / vocoder
    folders -> a vocoder (:func:`facevox.tasks.voice.vocode.load_vocoder`); voice-detector folders ->
    :class:`~facevox.tasks.voice.detector_data.VoiceDetector`; audio-GAN folders -> the frozen
    generator (:func:`facevox.tasks.invert.generators.load_generator`); a file written by
    ``facevox export --format onnx`` -> the object of its task, run by onnxruntime
    (:func:`facevox.export.load_exported`). Anything else is a one-line :class:`~facevox.errors.FacevoxError`."""
    name = str(what)
    if name in BACKENDS and not Path(name).exists():
        task = BACKENDS[name]
        return _make(task, None, name, device, precision, options)
    path = Path(what)
    if not path.exists():
        raise FacevoxError(f"no such model folder, and not a backend (valid: {', '.join(BACKENDS)})", path)
    if path.is_file():  # a file written by ``facevox export`` (ONNX or TorchScript, with its sidecar)
        from facevox.export import load_exported

        return load_exported(path, device=device, precision=precision, **options)
    task = folder_task(path)
    return _make(task, path, "model", device, precision, options)


def _make(task: str | None, path: Path | None, backend: str, device: str, precision: str,
          options: Mapping[str, Any]) -> Any:
    opts = dict(options)
    if task == "speaker":
        from facevox.tasks.speaker.evaluate import SpeakerScorer

        _no_more(opts, path or backend)
        return SpeakerVerifier(SpeakerScorer(path, backend, use="facevox.load", device=device, precision=precision))
    if task == "face":
        from facevox.tasks.face.evaluate import FaceScorer

        aligned, detector = bool(opts.pop("aligned", False)), str(opts.pop("detector", "dlib"))
        _no_more(opts, path or backend)
        return FaceVerifier(FaceScorer(path, backend, precision=precision, use="facevox.load", device=device),
                            aligned=aligned, detector=detector)
    if task == "fakeface":
        _no_more(opts, path)
        return FakeFaceDetector(path, device=device, precision=precision)
    if task == "invert":
        _no_more(opts, path)
        return Inverter(path, device=device)
    if task == "vocoder":  # .mel(wave), .vocode(mel), .resynthesise(wave): numpy at 16 kHz
        from facevox.tasks.voice.vocode import load_vocoder

        _no_more(opts, path or backend)
        return load_vocoder(path or backend, device=device, precision=precision)
    if task == "voice-detector":  # .probs(waves) -> P(fake), .score_files(paths), .threshold
        from facevox.tasks.voice.detector_data import load_detector

        _no_more(opts, path)
        return load_detector(path, "facevox.load", device, precision)
    if task == "audio-gan":  # the frozen generator: z (B, nz) -> waves (B, 1, T)
        from facevox.tasks.invert.generators import WAVEGAN, load_generator

        _no_more(opts, path)
        return load_generator(f"{WAVEGAN}{path}", device=device)
    raise FacevoxError("the model folder does not say its task (model.yaml) and it cannot be inferred", path)


def _no_more(options: Mapping[str, Any], where: Any) -> None:
    if options:
        raise FacevoxError(f"unknown option(s) for this model: {', '.join(sorted(options))}", str(where))
