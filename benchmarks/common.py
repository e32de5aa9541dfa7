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


def machine_header() -> dict[str, str]:
    """What a results table says it was measured on."""
    return {"machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
            "torch": f"torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
