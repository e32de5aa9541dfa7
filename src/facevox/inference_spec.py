"""What a model folder means at inference time: one typed spec per task, written and read here only.

Training builds the task's spec and stores it with :meth:`to_extra` in the folder's ``extra.json``
(flat keys, the form folders have always had); every consumer reads it back with
:func:`inference_spec` (or ``ModelFolder.inference``), so a default is stated once, here, and
not restated by each command. ``extra.json`` entries that are not part of a spec (training time,
counts, validation figures) stay in ``extra.json`` for the model card and are not read at inference.

========  ==================================================================================
task      spec
========  ==================================================================================
speaker   :class:`SpeakerSpec`  kind, sample rate, scoring windows, pair crop, calibration
face      :class:`FaceSpec`     crop size, flip-and-add, loss, threshold, calibration
fakeface  :class:`FakeFaceSpec` load size, threshold, mask, classes, fused face probe
invert    :class:`InvertSpec`   generator, nz, encoder input size, perceptual features
========  ==================================================================================

The types were checked when the folder was read (:data:`facevox.model_schema.EXTRA_SCHEMAS`),
so building a spec from a folder cannot fail on a wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from facevox.verification.calibration import Calibration

SAMPLE_RATE = 16000  # every facevox speaker model reads 16 kHz mono


def _calibration(extra: Mapping[str, Any]) -> Calibration | None:
    return Calibration.from_dict(extra["calibration"]) if isinstance(extra.get("calibration"), dict) else None


@dataclass(frozen=True)
class SpeakerSpec:
    """A speaker model: an ``embedding`` network (waves -> embeddings), a ``pair`` classifier
    (two waves -> logit, scored on ``crop_samples`` crops) or a ``siamese`` embedding network."""

    task: ClassVar[str] = "speaker"
    kind: str = "embedding"
    sample_rate: int = SAMPLE_RATE
    window_seconds: float = 0.0  # 0: whole utterances; > 0: the mean embedding of windows this long
    max_seconds: float = 20.0  # longer utterances are embedded in windows of this length
    crop_samples: int = 25000  # pair classifiers: each wave's crop
    calibration: Calibration | None = None

    @property
    def threshold(self) -> float | None:
        return self.calibration.threshold if self.calibration else None

    def to_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "kind": self.kind, "sample_rate": self.sample_rate,
                               "scoring": {"window_seconds": self.window_seconds, "max_seconds": self.max_seconds}}
        if self.kind == "pair":
            out["crop_samples"] = self.crop_samples
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> SpeakerSpec:
        scoring = extra.get("scoring") or {}
        pair = (config or {}).get("pair") or {}  # folders written before the crop was in extra.json
        return cls(kind=extra.get("kind", cls.kind), sample_rate=int(extra.get("sample_rate", SAMPLE_RATE)),
                   window_seconds=float(scoring.get("window_seconds", cls.window_seconds)),
                   max_seconds=float(scoring.get("max_seconds", cls.max_seconds)),
                   crop_samples=int(extra.get("crop_samples", pair.get("crop_samples", cls.crop_samples))),
                   calibration=_calibration(extra))


@dataclass(frozen=True)
class FaceSpec:
    """A face embedding network: aligned crops of ``input_size`` (H, W) -> embeddings compared by
    ``similarity``; with ``flip``, each crop's embedding is added to its mirror image's."""

    task: ClassVar[str] = "face"
    input_size: tuple[int, int] = (112, 112)
    flip: bool = True
    loss: str = "?"
    similarity: str = "cosine"
    threshold: float | None = None  # the calibration's when there is one
    calibration: Calibration | None = None

    def to_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "input_size": list(self.input_size), "flip": self.flip,
                               "loss": self.loss, "similarity": self.similarity, "threshold": self.threshold}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> FaceSpec:
        calibration = _calibration(extra)
        threshold = extra.get("threshold", calibration.threshold if calibration else None)
        return cls(input_size=tuple(int(v) for v in extra.get("input_size", cls.input_size)),
                   flip=bool(extra.get("flip", cls.flip)), loss=str(extra.get("loss", cls.loss)),
                   similarity=str(extra.get("similarity", cls.similarity)),
                   threshold=None if threshold is None else float(threshold), calibration=calibration)


@dataclass(frozen=True)
class FakeFaceSpec:
    """The GAN-face detector: images resized to ``load_size`` squares (and ``mask`` box blanked),
    P(fake) compared with ``threshold``; ``face_probe`` is the fused probe's JSON when one was fitted."""

    task: ClassVar[str] = "fakeface"
    load_size: int = 256
    threshold: float = 0.5
    mask: tuple[float, ...] | None = None
    classes: tuple[str, str] = ("real", "fake")
    face_probe: dict[str, Any] | None = None

    def to_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "classes": list(self.classes), "load_size": self.load_size,
                               "threshold": self.threshold, "mask": list(self.mask) if self.mask else None}
        if self.face_probe is not None:
            out["face_probe"] = dict(self.face_probe)
        return out

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> FakeFaceSpec:
        mask = extra.get("mask")
        return cls(load_size=int(extra.get("load_size", cls.load_size)),
                   threshold=float(extra.get("threshold", cls.threshold)),
                   mask=tuple(float(v) for v in mask) if mask else None,
                   classes=tuple(extra.get("classes", cls.classes)), face_probe=extra.get("face_probe"))


@dataclass(frozen=True)
class InvertSpec:
    """An inversion encoder: images resized to ``input_size`` -> z of the generator that ``generator``
    names (:func:`facevox.tasks.invert.generators.load_generator` keywords); ``features`` are the
    perceptual features the hybrid method's loss uses."""

    task: ClassVar[str] = "invert"
    nz: int
    input_size: tuple[int, int]
    generator: dict[str, Any]
    features: dict[str, Any] = field(default_factory=dict)

    def to_extra(self) -> dict[str, Any]:
        return {"task": self.task, "nz": self.nz, "input_size": list(self.input_size),
                "generator": dict(self.generator), "features": dict(self.features)}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> InvertSpec:
        return cls(nz=int(extra["nz"]), input_size=tuple(int(v) for v in extra["input_size"]),
                   generator=dict(extra["generator"]), features=dict(extra.get("features") or {}))


@dataclass(frozen=True)
class VocoderSpec:
    """The MelGAN vocoder: log-mel frames of ``mel`` (:class:`facevox.audio.mel.MelSpec` settings) -> waves."""

    task: ClassVar[str] = "vocoder"
    mel: dict[str, Any] = field(default_factory=dict)

    def mel_spec(self) -> Any:
        from facevox.audio.mel import MelSpec

        return MelSpec.from_dict(self.mel)

    def to_extra(self) -> dict[str, Any]:
        return {"task": self.task, "mel": dict(self.mel)}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> VocoderSpec:
        return cls(mel=dict(extra.get("mel") or {}))


@dataclass(frozen=True)
class VoiceDetectorSpec:
    """The generated-speech detector: log-spectrograms (``n_fft``, ``win_length``, ``hop_length`` at
    ``sample_rate``) scored in ``window_seconds`` windows, P(fake) compared with ``threshold``."""

    task: ClassVar[str] = "voice-detector"
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    window_seconds: float = 3.0
    threshold: float = 0.5
    sample_rate: int = SAMPLE_RATE
    min_seconds: float = 0.25  # shorter files are an error

    def to_extra(self) -> dict[str, Any]:
        return {"task": self.task, "classes": ["real", "fake"], "n_fft": self.n_fft, "win_length": self.win_length,
                "hop_length": self.hop_length, "window_seconds": self.window_seconds, "threshold": self.threshold,
                "sample_rate": self.sample_rate, "min_seconds": self.min_seconds}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> VoiceDetectorSpec:
        return cls(**{f.name: extra[f.name] for f in fields(cls) if f.name in extra})


@dataclass(frozen=True)
class AudioGANSpec:
    """A waveform GAN's generator: z of size ``nz`` -> ``samples`` samples at ``sample_rate`` in ``output_range``."""

    task: ClassVar[str] = "audio-gan"
    nz: int = 100
    samples: int = 16384
    sample_rate: int = SAMPLE_RATE
    output_range: tuple[float, float] = (-1.0, 1.0)

    def to_extra(self) -> dict[str, Any]:
        return {"task": self.task, "nz": self.nz, "samples": self.samples, "sample_rate": self.sample_rate,
                "output_range": list(self.output_range)}

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> AudioGANSpec:
        return cls(nz=int(extra.get("nz", cls.nz)), samples=int(extra.get("samples", cls.samples)),
                   sample_rate=int(extra.get("sample_rate", cls.sample_rate)),
                   output_range=tuple(float(v) for v in extra.get("output_range", cls.output_range)))


SPECS: dict[str, type] = {s.task: s for s in (SpeakerSpec, FaceSpec, FakeFaceSpec, InvertSpec, VocoderSpec,
                                              VoiceDetectorSpec, AudioGANSpec)}


def inference_spec(task: str | None, extra: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> Any:
    """The typed spec of a folder of ``task`` from its ``extra.json`` (and ``config.yaml``), or None
    for a folder whose task is unknown."""
    spec = SPECS.get(task or "")
    return spec.from_extra(extra, config) if spec is not None else None
