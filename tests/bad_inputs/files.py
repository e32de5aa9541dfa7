"""Makers of bad files: each writes one broken input and returns its path.

Everything is made here from nothing (no real data): corrupt, empty, silent and too-short audio, a
header claiming 1 Hz, broken and zero-byte images, a decompression-bomb PNG, text that is not
UTF-8, damaged model folders and a checkpoint whose unpickling would create a file.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

NOT_UTF8 = b"caf\xe9 \xff\xfe"  # Latin-1 text and bytes that are never UTF-8


def write(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes as they are, text as UTF-8) to ``path``, creating the folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------ audio


def noise(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.2, int(seconds * rate)).astype(np.float32)


def wav(path: Path, wave: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    buf = io.BytesIO()  # soundfile cannot open names that are not UTF-8: write the bytes ourselves
    sf.write(buf, wave, rate, format="WAV", subtype=subtype)
    return write(path, buf.getvalue())


def corrupt_wav(path: Path) -> Path:
    """A RIFF/WAVE header followed by junk: no decoder makes sense of it."""
    return write(path, b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(range(256)) * 4)


def cut_m4a(path: Path) -> Path:
    """An AAC .m4a cut off before its index (the moov box the muxer writes last): not decodable."""
    from facevox.audio.container import write_m4a

    full = write_m4a(path.with_name("full_" + path.name), noise(1.0))
    data = full.read_bytes()
    full.unlink()
    return write(path, data[: len(data) // 2])


def silent_wav(path: Path, seconds: float = 1.0) -> Path:
    return wav(path, np.zeros(int(16000 * seconds), np.float32))


def short_wav(path: Path) -> Path:
    return wav(path, noise(0.01))  # 10 ms


def one_hz_wav(path: Path) -> Path:
    """A 16-bit WAV whose header claims a sample rate of 1 Hz (200 samples: 'three minutes')."""
    return wav(path, noise(200 / 16000), rate=1)


def nan_wav(path: Path) -> Path:
    wave = noise(1.0)
    wave[100:200] = np.nan
    return wav(path, wave, subtype="FLOAT")


# ------------------------------------------------------------------------------------------ images


def png(path: Path, size: int = 32, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return write(path, buf.getvalue())


def truncated_png(path: Path) -> Path:
    png(path, size=64)
    return write(path, path.read_bytes()[:120])


def bomb_png(path: Path, side: int = 60000) -> Path:
    """A PNG of a few dozen bytes whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                 + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------ model folders


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    return write(path, data[: int(len(data) * keep)])


def nan_weights(model_dir: Path) -> Path:
    """Set the first floating-point tensor of model.safetensors to NaN."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def edit_json(path: Path, **changes) -> Path:
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(changes)
    return write(path, json.dumps(data, indent=2))


# ------------------------------------------------------------------------------------------ checkpoints


class PlantFile:
    """Unpickling this object opens ``marker`` for writing (creating the file): a stand-in for a
    checkpoint that runs code when loaded with ``torch.load(weights_only=False)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """``checkpoints/last.pt`` shaped like a real one whose model entry is a :class:`PlantFile`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": PlantFile(marker), "optimizer": {}, "scheduler": {},
                "state": {"step": 1, "epoch": 0, "batch_in_epoch": 1}}, path)
    return path
