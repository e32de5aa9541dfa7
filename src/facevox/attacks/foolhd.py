"""FoolHD (Shamsabadi et al., ICASSP 2021, arXiv:2011.08483): a white-box attack on speaker
identification by a gated convolutional autoencoder that works on DCT frames of the waveform.

The waveform is cut into sqrt-Hann windowed frames (50 % overlap), each frame goes through an
orthonormal DCT-II, the (frames x coefficients) plane goes through a gated convolutional
encoder/decoder whose output is a perturbation of the coefficients; the perturbed coefficients
go back through the inverse DCT and overlap-add to a waveform. With a zero perturbation the
round trip is the identity (the last layer starts at zero). One autoencoder is trained per victim
(:func:`train_foolhd`) with ``adv_weight * misclassification + mfcc_weight * (1 - mean frame-wise
cosine of MFCCs)``; untargeted training pushes the true class below the best other one (a CW
margin), targeted training (an autoencoder conditioned on the target class) minimises
cross-entropy to the target. The trained autoencoder is saved as safetensors and run by the
registered attack ``"foolhd"``: ``create_attack("foolhd", model=PATH_OR_MODULE)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facevox.attacks.base import Attack, Victim
from facevox.audio.features import Fbank
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path
from facevox.registry import register_attack

FORMAT = "facevox-foolhd-1"


def dct_matrix(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n, n): ``coeffs = D @ x``, ``x = D.T @ coeffs``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


class DCTFrames(nn.Module):
    """Waves (B, T) <-> DCT frames (B, F, N): sqrt-periodic-Hann analysis and synthesis windows at
    hop N/2, whose squares sum to one, so :meth:`decode` of :meth:`encode` gives the wave back."""

    def __init__(self, frame_length: int = 256) -> None:
        super().__init__()
        if frame_length < 4 or frame_length % 2:
            raise FacevoxError(f"frame_length must be an even number >= 4, got {frame_length}", "foolhd")
        self.n, self.hop = frame_length, frame_length // 2
        self.register_buffer("window", torch.hann_window(frame_length, periodic=True).sqrt(), persistent=False)
        self.register_buffer("dct", dct_matrix(frame_length), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames :meth:`encode` gives for ``num_samples`` (every sample lies in two frames)."""
        return -(-num_samples // self.hop) + 1

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, F, N) DCT-II coefficients of the windowed frames."""
        frames = self.num_frames(wave.shape[-1])
        total = self.hop * (frames + 1)
        padded = F.pad(wave, (self.hop, total - self.hop - wave.shape[-1]))
        chunks = padded.unfold(-1, self.n, self.hop) * self.window  # (B, F, N)
        return chunks @ self.dct.T

    def decode(self, coeffs: torch.Tensor, num_samples: int) -> torch.Tensor:
        """(B, F, N) -> (B, num_samples): inverse DCT, synthesis window, overlap-add."""
        chunks = (coeffs @ self.dct) * self.window  # (B, F, N)
        total = self.hop * (coeffs.shape[1] + 1)
        wave = F.fold(chunks.transpose(1, 2), output_size=(1, total), kernel_size=(1, self.n),
                      stride=(1, self.hop))
        return wave.reshape(coeffs.shape[0], total)[:, self.hop:self.hop + num_samples]


class GatedConv(nn.Module):
    """``conv(x) * sigmoid(gate(x))`` (3x3, optional stride), a gated convolution."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.conv(x).chunk(2, dim=1)
        return a * torch.sigmoid(g)


class FoolHD(nn.Module):
    """The FoolHD autoencoder: waves (B, T) in [-1, 1] -> adversarial waves (B, T).

    ``channels`` per encoder level (each level halves frames and coefficients); the decoder
    mirrors it (nearest upsampling + gated convolutions, additive skips) and ends in a 1x1
    convolution initialised to zero, so a fresh model returns its input. Coefficients are scaled
    by their per-example RMS on the way in and the perturbation by the same RMS on the way out.
    ``num_classes > 0`` makes a targeted model: a learned per-class vector is added at the
    bottleneck and :meth:`forward` needs ``target``.
    """

    def __init__(self, frame_length: int = 256, channels: tuple[int, ...] | list[int] = (16, 32, 64),
                 num_classes: int = 0) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise FacevoxError(f"channels must be positive integers, got {channels}", "foolhd")
        if num_classes < 0:
            raise FacevoxError(f"num_classes must be >= 0, got {num_classes}", "foolhd")
        self.config = {"frame_length": int(frame_length), "channels": channels, "num_classes": int(num_classes)}
        self.frames = DCTFrames(frame_length)
        self.multiple = 2 ** (len(channels) - 1)
        if frame_length % self.multiple:
            raise FacevoxError(f"frame_length {frame_length} is not divisible by {self.multiple} "
                               f"({len(channels)} levels)", "foolhd")
        self.stem = GatedConv(1, channels[0])
        self.down = nn.ModuleList(GatedConv(a, b, stride=2) for a, b in zip(channels, channels[1:], strict=False))
        self.up = nn.ModuleList(GatedConv(b, a) for a, b in zip(channels, channels[1:], strict=False))
        self.embed = nn.Embedding(num_classes, channels[-1]) if num_classes else None
        self.out = nn.Conv2d(channels[0], 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def targeted(self) -> bool:
        return self.embed is not None

    def perturbation(self, coeffs: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbation (B, F, N) of DCT coefficients (B, F, N)."""
        b, frames, n = coeffs.shape
        scale = coeffs.pow(2).mean(dim=(1, 2), keepdim=True).sqrt() + 1e-8
        pad = -frames % self.multiple
        h = F.pad(coeffs / scale, (0, 0, 0, pad)).unsqueeze(1)
        h = self.stem(h)
        skips = []
        for layer in self.down:
            skips.append(h)
            h = layer(h)
        if self.embed is not None:
            if target is None:
                raise FacevoxError("this FoolHD model is targeted: give target", "foolhd")
            h = h + self.embed(target.to(h.device).long())[:, :, None, None]
        for layer, skip in zip(reversed(self.up), reversed(skips), strict=True):
            h = layer(F.interpolate(h, size=skip.shape[-2:], mode="nearest")) + skip
        return self.out(h)[:, 0, :frames] * scale

    def forward(self, wave: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        coeffs = self.frames.encode(wave)
        adv = self.frames.decode(coeffs + self.perturbation(coeffs, target), wave.shape[-1])
        return adv.clamp(-1.0, 1.0)


class MFCC(nn.Module):
    """MFCCs (B, frames, n_mfcc): the orthonormal DCT-II of log-mel energies (no mean removal)."""

    def __init__(self, n_mfcc: int = 13, n_mels: int = 40, sample_rate: int = 16000) -> None:
        super().__init__()
        self.fbank = Fbank(sample_rate=sample_rate, n_mels=n_mels, f_min=20.0, f_max=sample_rate / 2,
                           cmn=False, preemphasis=0.0)
        self.register_buffer("dct", dct_matrix(n_mels)[:n_mfcc], persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.fbank(wave).transpose(1, 2) @ self.dct.T


def mfcc_loss(mfcc: MFCC, clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """1 - the mean frame-wise cosine similarity of the MFCCs of ``clean`` and ``adv``."""
    with torch.no_grad():
        ref = mfcc(clean)
    return 1.0 - F.cosine_similarity(ref, mfcc(adv), dim=-1, eps=1e-8).mean()


def misclassification_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None,
                           margin: float = 0.0) -> torch.Tensor:
    """Targeted: cross-entropy to ``target``. Untargeted: mean of ``max(z_label - max_other z, -margin)``."""
    if target is not None:
        return F.cross_entropy(logits, target)
    true = logits.gather(1, labels[:, None])[:, 0]
    other = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (true - other).clamp(min=-margin).mean()


def foolhd_loss(model: FoolHD, victim: Victim, mfcc: MFCC, wave: torch.Tensor, labels: torch.Tensor,
                target: torch.Tensor | None = None, *, adv_weight: float = 1.0, mfcc_weight: float = 100.0,
                margin: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The multi-objective loss of one batch and its parts (``adv``, ``mfcc``, ``success``)."""
    adv = model(wave, target)
    logits = victim.logits(adv)
    l_adv = misclassification_loss(logits, labels, target, margin)
    l_mfcc = mfcc_loss(mfcc, wave, adv)
    pred = logits.argmax(1)
    success = (pred == target) if target is not None else (pred != labels)
    parts = {"adv": float(l_adv.detach()), "mfcc": float(l_mfcc.detach()), "success": float(success.float().mean())}
    return adv_weight * l_adv + mfcc_weight * l_mfcc, parts


def random_other(num_classes: int, generator: torch.Generator | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``target_fn``: for each label a uniformly drawn different class."""

    def draw(labels: torch.Tensor) -> torch.Tensor:
        shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
        return (labels + shift) % num_classes

    return draw


def _check(name: str, value: float, *, positive: bool) -> None:
    bad = not math.isfinite(value) or (value <= 0 if positive else value < 0)
    if bad:
        raise FacevoxError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}", f"foolhd.{name}")


def _victim_parameters(victim: Victim) -> list[nn.Parameter]:
    modules = [victim] if isinstance(victim, nn.Module) else [v for v in vars(victim).values()
                                                              if isinstance(v, nn.Module)]
    return [p for m in modules for p in m.parameters()]


def train_foolhd(victim: Victim, waves: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
                 target_fn: Callable[[torch.Tensor], torch.Tensor] | None = None, steps: int = 1000,
                 lr: float = 1e-3, batch_size: int = 16, mfcc_weight: float = 100.0, adv_weight: float = 1.0,
                 margin: float = 0.0, segment: int | None = None, model: FoolHD | None = None,
                 frame_length: int = 256, channels: tuple[int, ...] = (16, 32, 64), seed: int = 0,
                 progress: bool = True, log_every: int = 50) -> FoolHD:
    """Train a FoolHD autoencoder against ``victim`` on ``waves`` (N, T) with ``labels`` (N,).

    Adam on random batches (random crops of ``segment`` samples if given); the victim's
    parameters are frozen during training. Targeted: ``target_fn(labels) -> targets`` (default: a
    random other class per example) and a class-conditioned model. ``model`` continues training
    an existing autoencoder; otherwise one is built from ``frame_length`` and ``channels``.
    Returns the model in eval mode with ``model.history`` (the per-step loss parts).
    The MFCC term is small (c0, the log energy, dominates each MFCC vector, so the cosine stays
    near 1: about 1e-4 to 1e-2), hence the default ``mfcc_weight`` of 100.
    """
    from facevox.train import _Progress

    if not isinstance(steps, int) or steps <= 0:
        raise FacevoxError(f"steps must be a positive integer, got {steps}", "foolhd.steps")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise FacevoxError(f"batch_size must be a positive integer, got {batch_size}", "foolhd.batch_size")
    _check("lr", lr, positive=True)
    _check("mfcc_weight", mfcc_weight, positive=False)
    _check("adv_weight", adv_weight, positive=False)
    _check("margin", margin, positive=False)
    if not torch.is_tensor(waves) or waves.dim() != 2 or waves.shape[0] == 0:
        raise FacevoxError(f"waves must be a non-empty tensor (N, T), got {getattr(waves, 'shape', type(waves))}",
                           "foolhd.waves")
    labels = torch.as_tensor(labels, device=waves.device).long()
    if labels.shape != (waves.shape[0],):
        raise FacevoxError(f"labels must have shape ({waves.shape[0]},), got {tuple(labels.shape)}", "foolhd.labels")
    num_classes = int(victim.num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise FacevoxError(f"labels must lie in [0, {num_classes})", "foolhd.labels")
    if targeted and num_classes < 2:
        raise FacevoxError("a targeted attack needs a victim with at least two classes", "foolhd.targeted")
    if segment is not None and not 0 < segment <= waves.shape[1]:
        raise FacevoxError(f"segment must be in [1, {waves.shape[1]}], got {segment}", "foolhd.segment")

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if model is None:
        model = FoolHD(frame_length, channels, num_classes if targeted else 0)
    elif model.targeted != targeted:
        raise FacevoxError(f"the model given is {'' if model.targeted else 'un'}targeted", "foolhd.model")
    model = model.to(waves.device).train()
    if targeted and target_fn is None:
        target_fn = random_other(num_classes, gen)
    mfcc = MFCC().to(waves.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    frozen = [(p, p.requires_grad) for p in _victim_parameters(victim)]
    history: list[dict[str, float]] = []
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        start = time.perf_counter()
        with _Progress(steps, 0, progress, log_every) as bar:
            for step in range(1, steps + 1):
                idx = torch.randint(0, waves.shape[0], (batch_size,), generator=gen).to(waves.device)
                x, y = waves[idx], labels[idx]
                if segment is not None and segment < x.shape[1]:
                    off = int(torch.randint(0, x.shape[1] - segment + 1, (1,), generator=gen))
                    x = x[:, off:off + segment]
                target = target_fn(y).to(waves.device).long() if targeted else None
                loss, parts = foolhd_loss(model, victim, mfcc, x, y, target, adv_weight=adv_weight,
                                          mfcc_weight=mfcc_weight, margin=margin)
                if not torch.isfinite(loss):
                    raise FacevoxError(f"the loss became {float(loss)} at step {step}; lower lr", "foolhd.lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append({"step": step, "loss": float(loss.detach()), **parts})
                rate = step * batch_size / max(time.perf_counter() - start, 1e-9)
                bar.update({"step": step, "epoch": step * batch_size // waves.shape[0], "loss": float(loss.detach()),
                            "lr": lr, "samples_per_s": rate})
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    model.eval()
    model.history = history
    return model


def save_foolhd(model: FoolHD, path: str | Path) -> Path:
    """Write the autoencoder's weights and config to ``path`` (safetensors, atomically)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(model.config)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def load_foolhd(path: str | Path, device: str | torch.device = "cpu") -> FoolHD:
    """A FoolHD autoencoder written by :func:`save_foolhd`, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FacevoxError("no such FoolHD model file", path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise FacevoxError(f"not a safetensors file ({str(err).splitlines()[0] if str(err) else 'unreadable'})",
                           path) from None
    if meta.get("format") != FORMAT:
        raise FacevoxError(f"not a FoolHD model (format {meta.get('format')!r}, expected {FORMAT!r})", path)
    try:
        model = FoolHD(**json.loads(meta["config"]))
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise FacevoxError(f"FoolHD model does not match its config: {str(err).splitlines()[0]}", path) from None
    return model.to(device).eval()


@register_attack("foolhd")
class FoolHDAttack(Attack):
    """Runs a trained FoolHD autoencoder (a :class:`FoolHD` or a file from :func:`save_foolhd`).

    One forward pass per batch; no gradients of the victim are needed at attack time.
    """

    name = "foolhd"

    def __init__(self, *, model: str | Path | FoolHD) -> None:
        self.model = model if isinstance(model, FoolHD) else load_foolhd(model)
        self.model.eval()
        self.targeted_ok = self.model.targeted

    def perturb(self, victim: Victim, x: torch.Tensor, labels: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        if getattr(victim, "modality", "audio") != "audio":
            raise FacevoxError("FoolHD attacks audio victims only", "foolhd")
        if self.model.targeted and target is None:
            raise FacevoxError("this FoolHD model was trained targeted: give target", "foolhd")
        if not self.model.targeted and target is not None:
            raise FacevoxError("this FoolHD model was trained untargeted: give no target", "foolhd")
        if self.model.targeted and int(target.max()) >= self.model.config["num_classes"]:
            raise FacevoxError(f"target beyond the model's {self.model.config['num_classes']} classes", "foolhd")
        param = next(self.model.parameters())
        if param.device != x.device:
            self.model.to(x.device)
        with torch.no_grad():
            return self.model(x.float(), target).to(x.dtype)


def describe(model: FoolHD) -> dict[str, Any]:
    """The model's config and parameter count (for logs and reports)."""
    return {**model.config, "parameters": sum(p.numel() for p in model.parameters())}
