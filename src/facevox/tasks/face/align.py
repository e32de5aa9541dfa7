"""``facevox face align`` and the alignment of single photos for ``verify``.

``--fallback center``: a photo in which no face is found still gets a crop, the standard fallback
for aligned benchmarks: a centred box of the output's aspect ratio whose height is 0.6 of the photo's
shorter side (a 150x150 square of a 250x250 LFW photo), resized to the output size
(:func:`facevox.image.face_align.center_crop`). It is written like the other crops and listed in
align_report.csv with status ``fallback_center`` (method ``center-box``); the summary counts them.
Photos with several faces are not given a fallback (``--largest`` keeps the largest).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_folders(src: Path, out: Path, outputs: Iterable[Path] = ()) -> None:
    """Refuse an output folder that is, or is inside, the photo folder (the crops would land among the
    photos, or replace them), and any of ``outputs`` that would land inside the photo folder all the same
    (the photo folder inside the output folder, a link in the output tree). Symlinks are resolved before
    comparing; nothing has been written when this raises."""
    src_abs, out_abs = src.resolve(), out.resolve()
    if _inside(out_abs, src_abs):
        what = "is the photo folder" if out_abs == src_abs else "is inside the photo folder"
        raise FacevoxError(f"the output folder {what} {src}: the crops would be written among (or over) the photos; "
                           "give another --out", out)
    for path in outputs:
        if _inside(path.resolve(), src_abs):
            raise FacevoxError(f"the crop {path} would be written inside the photo folder {src} (among or over the "
                               "photos); give another --out", out)


def align_command(src: Path, out: Path, *, backend: str, size: tuple[int, int], largest: bool,
                  aligned: bool, fallback: str = "none") -> list[tuple[Path, str]]:
    """Align (or, for already aligned data, resize) every photo of ``src`` into ``out``; print a summary.

    An output folder that is, or is inside, ``src`` is refused before anything is written (see
    :func:`check_folders`)."""
    from facevox.image.face_align import _output_names as output_names  # the names align_folder writes
    from facevox.image.io import list_image_files

    if aligned and fallback != "none":
        raise FacevoxError("not used with --aligned (no face is looked for)", "--fallback")
    files = list_image_files(src)
    names = output_names([f.relative_to(src) for f in files])
    check_folders(src, out, [out / names[f.relative_to(src)] for f in files] + [out / "align_report.csv"])
    if aligned:
        from facevox.image.io import load_image, save_image

        report = []
        for f in files:
            try:
                save_image(out / names[f.relative_to(src)], resize_aligned(load_image(f), size))
            except FacevoxError as err:
                report.append((f, err.problem))
    else:
        report = align_folder(src, out, backend, size, largest, fallback=fallback)
    kinds = Counter("no face" if why == "no face found" else "fallback centre crop" if why.startswith("no face found,")
                    else "several faces" if "faces" in why else "unreadable" for _, why in report)
    print(f"face align: crops in {out}; {len(report)} photo(s) reported"
          + (f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})" if report else "")
          + ("" if aligned else f"; see {out / 'align_report.csv'}"), file=sys.stderr)
    return report
