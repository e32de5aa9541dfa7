"""Fail if the environment holds a package that must never be installed here.

torchvision, torchaudio and nvidia-* wheels do not work with the CPU torch 2.13.0 build this
project pins, and any other torch version means the constraints were bypassed.
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions


def forbidden_packages() -> list[str]:
    bad = []
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name in {"torchvision", "torchaudio"} or name.startswith("nvidia-"):
            bad.append(f"{name}=={dist.version}")
        elif name == "torch" and not dist.version.startswith("2.13.0"):
            bad.append(f"torch=={dist.version} (expected 2.13.0)")
    return sorted(bad)


if __name__ == "__main__":
    bad = forbidden_packages()
    if bad:
        print("forbidden packages installed: " + ", ".join(bad), file=sys.stderr)
        sys.exit(1)
    print("environment ok: torch 2.13.0, no torchvision/torchaudio/nvidia-* packages")
