"""``facevox face align`` and the alignment of single photos for ``verify``."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.image.face_align import align_folder, align_image, resize_aligned


def align_photo(image: np.ndarray, path: Path, detector: str, size: tuple[int, int] = (112, 112)) -> np.ndarray:
    """The aligned crop of the one face in ``image``; no face or several faces is an error naming ``path``."""
    result = align_image(image, detector, size)
    if not result.ok:
        raise FacevoxError(f"{result.status} (with --detector {detector}); give a photo with one face, "
                           "or an aligned crop with --aligned", path)
    return result.crop


def align_command(src: Path, out: Path, *, backend: str, size: tuple[int, int], largest: bool,
                  aligned: bool) -> list[tuple[Path, str]]:
    """Align (or, for already aligned data, resize) every photo of ``src`` into ``out``; print a summary."""
    if aligned:
        from facevox.image.io import list_image_files, load_image, save_image

        report = []
        for f in list_image_files(src):
            try:
                save_image(out / f.relative_to(src).with_suffix(".png"), resize_aligned(load_image(f), size))
            except FacevoxError as err:
                report.append((f, err.problem))
    else:
        report = align_folder(src, out, backend, size, largest)
    kinds = Counter("no face" if why == "no face found" else "several faces" if "faces" in why else "unreadable"
                    for _, why in report)
    print(f"face align: crops in {out}; {len(report)} photo(s) reported"
          + (f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})" if report else "")
          + ("" if aligned else f"; see {out / 'align_report.csv'}"), file=sys.stderr)
    return report
