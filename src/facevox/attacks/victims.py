"""facevox's models as victims (:class:`facevox.attacks.base.Victim`): class logits that are
differentiable with respect to the waveform or the image.

- :class:`SpeakerIdentificationVictim`: one class per enrolled speaker, logit ``scale * cosine``
  of the wave's embedding with the speaker's template (the normalised mean of the unit
  embeddings of the enrolment waves).
- :class:`SpeakerVerificationVictim`: class 1 (accepted) when the cosine with the enrolment
  embedding reaches ``threshold``: logits ``[0, scale * (cos - threshold)]``.
- :class:`FakeFaceVictim`: class 1 (fake) when the detector's P(fake) exceeds its threshold:
  logits ``[0, z - logit(threshold)]`` (``[0, z]`` for the usual 0.5), ``z`` the CNN's logit.

Speaker models compute their features (STFT, filter banks) inside the model, so gradients reach
the waveform; waves are embedded whole (scoring windows long recordings; attack clips are
short). The fake-face victim resizes images to the detector's square and greys its mask box
as :meth:`facevox.tasks.fakeface.scoring.Detector.prepare` does, but with differentiable
bicubic resampling (PIL's Lanczos/bicubic on uint8 in scoring) and no rounding; the ImageNet
normalisation is the network's own first layer. A fused face probe is not part of the victim:
the CNN alone is attacked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.errors import FacevoxError

EMBEDDING_KINDS = ("embedding", "siamese")


def _speaker_model(model: str | Path | nn.Module, use: str) -> tuple[nn.Module, Any]:
    """The embedding network (eval mode) and, for a folder, its :class:`~facevox.inference_spec.SpeakerSpec`."""
    if isinstance(model, nn.Module):
        return model.eval(), None
    from facevox.checkpoint import read_model_folder
    from facevox.inference_spec import SpeakerSpec

    folder = read_model_folder(model, task="speaker", use=use)
    spec = SpeakerSpec.from_extra(folder.extra, folder.config)
    if spec.kind not in EMBEDDING_KINDS:
        raise FacevoxError(f"this is a speaker {spec.kind} model; {use} needs an embedding model "
                           f"({' or '.join(EMBEDDING_KINDS)})", folder.path)
    return folder.model.eval(), spec


def _wave(w: Any, where: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(w, dtype=np.float32) if not isinstance(w, torch.Tensor) else w).float()
    if t.dim() != 1 or t.numel() == 0 or not torch.isfinite(t).all():
        raise FacevoxError(f"an enrolment wave must be a non-empty finite 1-d array, got shape {tuple(t.shape)}",
                           where)
    return t


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _SpeakerVictim:
    modality = "audio"

    def __init__(self, model: str | Path | nn.Module, scale: float, use: str) -> None:
        from facevox.attacks.budgets import check_positive

        self.model, self.spec = _speaker_model(model, use)
        self.scale = check_positive(scale, "scale")
        self.device = _device(self.model)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings (B, D) of waves (B, T), differentiable."""
        if x.dim() != 2:
            raise FacevoxError(f"waves must be a batch (B, T), got shape {tuple(x.shape)}", "inputs")
        e = self.model(x.to(self.device)).float()
        return F.normalize(e.reshape(e.shape[0], -1), dim=1)

    @torch.no_grad()
    def template(self, waves: Sequence[Any], where: str) -> torch.Tensor:
        """The unit mean of the unit embeddings of ``waves`` (D,)."""
        if not len(waves):
            raise FacevoxError("needs at least one enrolment wave", where)
        embs = torch.cat([self.embed(_wave(w, where)[None]) for w in waves])
        return F.normalize(embs.mean(0), dim=0)


class SpeakerIdentificationVictim(_SpeakerVictim):
    """Closed-set speaker identification: logits (B, S) = ``scale`` * cosine with each template.

    ``model``: a speaker model folder (embedding kind) or a wave -> embedding module;
    ``enrolment``: speaker name -> waves (T,) at 16 kHz; class ``i`` is ``speakers[i]``
    (the mapping's order).
    """

    def __init__(self, model: str | Path | nn.Module, enrolment: Mapping[str, Sequence[Any]],
                 scale: float = 10.0) -> None:
        super().__init__(model, scale, "attack speaker identification")
        if len(enrolment) < 2:
            raise FacevoxError(f"identification needs at least 2 enrolled speakers, got {len(enrolment)}",
                               "enrolment")
        self.speakers = list(enrolment)
        self.templates = torch.stack([self.template(enrolment[s], f"enrolment[{s!r}]") for s in self.speakers])
        self.num_classes = len(self.speakers)

    def label_of(self, speaker: str) -> int:
        if speaker not in self.speakers:
            raise FacevoxError(f"speaker {speaker!r} is not enrolled", "speaker")
        return self.speakers.index(speaker)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.embed(x) @ self.templates.T


class SpeakerVerificationVictim(_SpeakerVictim):
    """Verification against one enrolment: class 1 (accepted) iff cosine >= ``threshold``.

    ``threshold`` defaults to the folder's calibrated threshold (``extra.json`` calibration);
    without one it must be given. ``enrol_wave``: one wave (T,) or a list of waves (their template).
    """

    num_classes = 2

    def __init__(self, model: str | Path | nn.Module, enrol_wave: Any, threshold: float | None = None,
                 scale: float = 10.0) -> None:
        super().__init__(model, scale, "attack speaker verification")
        if threshold is None:
            threshold = getattr(self.spec, "threshold", None)
            if threshold is None:
                raise FacevoxError("no threshold: the model has no calibrated threshold, so give one", "threshold")
        self.threshold = float(threshold)
        if not np.isfinite(self.threshold):
            raise FacevoxError(f"must be finite, got {threshold}", "threshold")
        waves = enrol_wave if isinstance(enrol_wave, list | tuple) else [enrol_wave]
        self.enrolled = self.template(waves, "enrol_wave")

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x) @ self.enrolled

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scale * (self.cosine(x) - self.threshold)
        return torch.stack([torch.zeros_like(z), z], dim=1)


class FakeFaceVictim:
    """The GAN-face detector's CNN: images (B, 3, H, W) in [0, 1] -> logits (B, 2), class 1 = fake.

    ``detector``: a fakeface model folder or a loaded :class:`~facevox.tasks.fakeface.scoring.Detector`.
    """

    modality = "image"
    num_classes = 2

    def __init__(self, detector: Any, device: str = "cpu") -> None:
        from facevox.tasks.fakeface.scoring import Detector

        if not isinstance(detector, Detector):
            detector = Detector.load(str(detector), use="attack fakeface", device=device)
        self.detector = detector
        self.model = detector.model.eval()
        self.device = detector.device
        self.load_size, self.mask = int(detector.load_size), detector.mask
        t = min(max(float(detector.threshold), 1e-6), 1 - 1e-6)
        self.offset = float(np.log(t / (1 - t)))  # logit of the detector's P(fake) threshold

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Shorter side to ``load_size`` (bicubic, antialiased when shrinking), centre crop, mask box grey."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise FacevoxError(f"images must be a batch (B, 3, H, W), got shape {tuple(x.shape)}", "inputs")
        s = self.load_size
        h, w = x.shape[2:]
        if (h, w) != (s, s):
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=scale < 1)
            top, left = (nh - s) // 2, (nw - s) // 2
            x = x[:, :, top : top + s, left : left + s]
        if self.mask:
            x0, y0, x1, y1 = self.mask
            keep = torch.ones(1, 1, s, s, dtype=x.dtype, device=x.device)
            keep[..., int(round(y0 * s)) : int(round(y1 * s)), int(round(x0 * s)) : int(round(x1 * s))] = 0
            x = x * keep + (1 - keep) * (128 / 255)
        return x

    def fake_logit(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN's logit of P(fake) (B,)."""
        z = self.model(self.prepare(x.to(self.device).float()))
        return z.reshape(z.shape[0], -1)[:, 0].float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fake_logit(x) - self.offset
        return torch.stack([torch.zeros_like(z), z], dim=1)
