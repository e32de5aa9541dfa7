"""Vocoders behind one interface: a trained MelGAN model folder, or Griffin-Lim (no training).

``load_vocoder("griffinlim")`` or ``load_vocoder(MODEL_FOLDER)`` gives an object with ``name``,
``spec`` (its :class:`~facevox.audio.mel.MelSpec`), ``mel(wave) -> (n_mels, F)``,
``vocode(mel) -> wave`` and ``resynthesise(wave) -> wave`` (same length), numpy float32 in and
out at 16 kHz. :func:`vocode_files` is ``facevox voice vocode``: resynthesise audio files (and
score them against the originals) or vocode saved log-mel ``.npy`` files.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.audio.griffin_lim import mel_griffin_lim
from facevox.audio.io import AUDIO_EXTENSIONS, audio_info, expand_audio_paths, load_audio, save_wav
from facevox.audio.mel import LogMel, MelSpec
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.precision import autocast, resolve_device, resolve_precision
from facevox.textfile import shown_name

GRIFFIN_LIM = "griffinlim"


class _Vocoder:
    name = "vocoder"

    def __init__(self, spec: MelSpec, device: torch.device) -> None:
        self.spec, self.device = spec, device
        self._mel = LogMel(spec).to(device)

    def mel(self, wave: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._mel(torch.as_tensor(wave, dtype=torch.float32, device=self.device)[None])[0].cpu().numpy()

    def _vocode(self, mel: torch.Tensor, length: int | None) -> torch.Tensor:
        raise NotImplementedError

    def vocode(self, mel: np.ndarray, length: int | None = None) -> np.ndarray:
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim != 2 or mel.shape[0] != self.spec.n_mels:
            raise FacevoxError(f"expected log-mel frames ({self.spec.n_mels}, F), got shape {mel.shape}")
        if mel.shape[1] < 4:
            raise FacevoxError(f"need at least 4 mel frames, got {mel.shape[1]}")
        with torch.no_grad():
            wave = self._vocode(torch.from_numpy(mel).to(self.device)[None], length)[0]
        return np.clip(wave.float().cpu().numpy(), -1.0, 1.0).astype(np.float32)

    def resynthesise(self, wave: np.ndarray) -> np.ndarray:
        """``wave`` (T,) through its log-mel frames and back (T,)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or len(wave) < 4 * self.spec.hop_length:
            raise FacevoxError(f"expected a wave (T,) of at least {4 * self.spec.hop_length} samples, "
                               f"got shape {wave.shape}")
        return self.vocode(self.mel(wave), len(wave))


class GriffinLimVocoder(_Vocoder):
    """Fast Griffin-Lim (momentum 0.99) on the pseudo-inverse of the mel filterbank."""

    name = GRIFFIN_LIM

    def __init__(self, spec: MelSpec | None = None, n_iter: int = 60, device: str = "cpu") -> None:
        super().__init__(spec or MelSpec(), torch.device(device))
        self.n_iter = n_iter

    def _vocode(self, mel: torch.Tensor, length: int | None) -> torch.Tensor:
        return mel_griffin_lim(mel, self.spec, n_iter=self.n_iter,
                               length=length or self.spec.hop_length * (mel.shape[-1] - 1))


class MelGANVocoder(_Vocoder):
    """A trained MelGAN generator (``precision`` auto/fp32/bf16)."""

    name = "melgan"

    def __init__(self, generator: torch.nn.Module, spec: MelSpec, device: torch.device, precision: str = "fp32",
                 ) -> None:
        super().__init__(spec, device)
        self.generator = generator.to(device).eval()
        self.amp = resolve_precision(precision, device)

    def _vocode(self, mel: torch.Tensor, length: int | None) -> torch.Tensor:
        with autocast(self.device, self.amp):
            wave = self.generator(mel)[:, 0]
        return wave[..., :length] if length else wave


def load_vocoder(source: str | Path, device: str = "auto", precision: str = "fp32",
                 ) -> GriffinLimVocoder | MelGANVocoder:
    """``"griffinlim"`` or a vocoder model folder (``facevox voice train-vocoder``)."""
    if str(source) == GRIFFIN_LIM:
        return GriffinLimVocoder(device=str(resolve_device(device, "--device")))
    from facevox.checkpoint import read_model_folder

    dev = resolve_device(device, "--device")
    folder = read_model_folder(source, dev, task="vocoder", use="facevox voice vocode")
    try:
        spec = folder.inference.mel_spec()
    except (FacevoxError, TypeError) as err:
        raise FacevoxError(f"bad mel settings ({err})", shown_name(Path(source) / "extra.json")) from None
    if getattr(folder.model, "hop_length", spec.hop_length) != spec.hop_length:
        raise FacevoxError(f"the generator's hop ({folder.model.hop_length}) differs from the mel hop "
                           f"({spec.hop_length})", shown_name(Path(source) / "extra.json"))
    return MelGANVocoder(folder.model, spec, dev, precision)


# --------------------------------------------------------------------------------------------
# facevox voice vocode


def _check_input(path: Path, spec: MelSpec, min_seconds: float) -> None:
    """A header-only look at one input, before anything is vocoded (a bad file is found before any output)."""
    if path.suffix.lower() == ".npy":
        _load_mel(path, spec.n_mels, mmap=True)
        return
    rate, _, frames = audio_info(path)
    if frames / rate < min_seconds:
        raise FacevoxError(f"audio too short ({frames / rate:.2f} s, need at least {min_seconds:g} s)",
                           shown_name(path))


def _load_mel(path: Path, n_mels: int, mmap: bool = False) -> np.ndarray:
    try:
        mel = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError) as err:
        reason = " ".join(str(err).split())[:120]
        raise FacevoxError(f"cannot read log-mel frames ({reason})", shown_name(path)) from None
    if mel.ndim != 2 or mel.shape[0] != n_mels or not np.issubdtype(mel.dtype, np.floating):
        raise FacevoxError(f"expected float log-mel frames ({n_mels}, F), got {mel.dtype} {mel.shape}",
                           shown_name(path))
    if mel.shape[1] < 4:
        raise FacevoxError(f"need at least 4 mel frames, got {mel.shape[1]}", shown_name(path))
    if not np.all(np.isfinite(mel)):
        raise FacevoxError("log-mel frames hold NaN or infinite values", shown_name(path))
    return mel


def vocode_files(model: str, paths: Sequence[str | Path], out: str | Path, *, score: bool = True,
                 perceptual: bool = True, device: str = "auto", precision: str = "fp32", max_files: int = 0,
                 min_seconds: float = 0.25, progress: bool = True) -> dict[str, Any]:
    """Vocode every input into OUT/<stem>.wav; audio inputs are resynthesised and (``score``) compared with the
    originals (MCD, MR-STFT distance, PESQ, STOI). Writes OUT/vocode.csv and OUT/summary.json."""
    from tqdm import tqdm

    from facevox.audio.quality import quality

    files = expand_audio_paths(paths, (".npy", *AUDIO_EXTENSIONS), "an audio file or a .npy of log-mel frames",
                               "no audio or .npy files given")[: max_files or None]
    vocoder = load_vocoder(model, device, precision)
    for path in files:
        _check_input(path, vocoder.spec, min_seconds)
    out = Path(out)
    rows: list[dict[str, Any]] = []
    for path in tqdm(files, desc=f"vocode ({vocoder.name})", unit="file", disable=not progress):
        if path.suffix.lower() == ".npy":
            mel, wave = _load_mel(path, vocoder.spec.n_mels), None
        else:
            wave = load_audio(path, vocoder.spec.sample_rate, min_seconds=min_seconds)
            mel = vocoder.mel(wave)
        t0 = time.perf_counter()
        est = vocoder.vocode(mel, len(wave) if wave is not None else None)
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {"path": str(path), "seconds": len(est) / vocoder.spec.sample_rate,
                               "vocode_seconds": seconds, "rtf": seconds / (len(est) / vocoder.spec.sample_rate)}
        if wave is not None and score:
            row.update(quality(wave, est, perceptual=perceptual, sr=vocoder.spec.sample_rate))
        save_wav(out / f"{len(rows):04d}_{path.stem}.wav", est, vocoder.spec.sample_rate)
        rows.append(row)
    summary = summarise(rows, vocoder.name, str(model), device=str(vocoder.device), precision=precision)
    _write_csv(out / "vocode.csv", rows)
    atomic_write_json(out / "summary.json", summary)
    return summary


def summarise(rows: list[dict[str, Any]], name: str, model: str, **info: Any) -> dict[str, Any]:
    """Means over files (and the overall real-time factor: total vocode time / total audio time)."""
    keys = [k for k in ("mcd_db", "stft_distance", "pesq_wb", "stoi") if any(k in r for r in rows)]
    out: dict[str, Any] = {"vocoder": name, "model": model, "files": len(rows), **info}
    for k in keys:
        vals = np.array([r[k] for r in rows if k in r], dtype=np.float64)
        out[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    audio = sum(r["seconds"] for r in rows)
    out["audio_seconds"] = audio
    out["rtf"] = sum(r["vocode_seconds"] for r in rows) / max(audio, 1e-9)
    out["times_real_time"] = 1.0 / max(out["rtf"], 1e-12)
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())
