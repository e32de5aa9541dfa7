"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> str:
    """``native bf16`` or ``AVX2, no native bf16`` (what decides the bf16 columns), from oneDNN's view."""
    from facevox.precision import cpu_bf16_native

    if cpu_bf16_native():
        return "native bf16"
    return f"{torch.backends.cpu.get_cpu_capability()}, no native bf16"


def machine_header() -> dict[str, str]:
    """What a results table says it was measured on."""
    return {"machine": f"{cpu_name()} ({cpu_features()}), {torch.get_num_threads()} threads",
            "torch": f"torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
