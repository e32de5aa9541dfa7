"""Devices and numeric precision: which device to run on, and when bf16 autocast is used.

``precision: auto`` means bf16 autocast where the hardware has native bf16 (a GPU that supports
it, or a CPU with AVX-512 BF16 / AMX), fp32 elsewhere. ``bf16`` asks for bf16 autocast anyway:
on a CPU without native bf16 it still works (oneDNN emulates it, slowly), except for recurrent
layers, whose bf16 kernels exist only on native hardware; models with an LSTM run it in fp32
inside autocast there (see :func:`needs_fp32_recurrent`).
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from facevox.errors import FacevoxError


def resolve_device(name: str = "auto", key: str = "train.device") -> torch.device:
    """``auto`` picks this rank's GPU when there is one, else the CPU; ``key`` names the setting in errors."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FacevoxError(f"not a device name: {name!r}", key) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacevoxError("CUDA was asked for but no GPU is available", key)
    return device


@functools.cache
def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast on ``device`` (native bf16 on the GPU or the CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_bf16_native()
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a ``precision`` setting, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and bf16_supported(device)):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast context for ``dtype`` (a no-op context when it is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_fp32_recurrent(x: torch.Tensor) -> bool:
    """Whether an LSTM/GRU on ``x`` must leave bf16 autocast: CPU autocast in bf16 without native bf16.

    oneDNN has no bf16 LSTM primitive for such CPUs ("could not create a primitive descriptor for
    the LSTM forward propagation primitive"), so the recurrent layer runs in fp32 there.
    """
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not cpu_bf16_native()
    )
