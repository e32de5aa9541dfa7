"""Does an "aligned" input look like an aligned face crop? The check run before face crops are
embedded (``face eval``, ``face embed``, ``face verify --aligned``).

An embedder given a whole photo instead of a crop still returns an embedding, and a wrong one: a
trained model shrinks the photo to its input size, dlib's backend takes the whole frame as the face
box. So, before embedding:

``model`` backend
    an image more than :data:`OVERSIZE` (1.5) times the model's input size (``FaceSpec.input_size``)
    in either side is counted.
``dlib`` backend
    the expected crop is facevox's 112x112 ArcFace crop (``face align``). Every image's size is read
    from its header (no decoding): more than 1.5 times 112 in either side, or an aspect ratio
    (long side / short side) above :data:`MAX_ASPECT`, is counted. Then dlib's HOG detector runs
    (no upsampling) on a sample of at most :data:`DETECTOR_SAMPLE` (20) images, oversized ones first:
    a face box whose longer side is under :data:`SMALL_BOX` (0.6) of the frame's shorter side means a
    photo with a face in it, and that image is counted whatever its size; a box filling the frame
    means a (large) crop, and that image is not counted. When every sampled oversized image was such
    a large crop, the unsampled oversized images are taken to be crops as well. Running the detector
    on every image would double dlib's cost; 20 images cost a fraction of a second.

The outcome is one line (:meth:`CropCheck.message`), printed once on stderr after the results
(:meth:`CropCheck.warn`) and kept in metrics.json's ``warnings``; with ``--refuse-unaligned`` it is
a :class:`~facevox.errors.FacevoxError` before anything is embedded (:meth:`CropCheck.refuse`).
Files whose header cannot be read are left to the loader, which reports them as it always has.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError

OVERSIZE = 1.5  # an image this many times the expected crop, in either side, is not a crop
MAX_ASPECT = 1.4  # long side / short side of a crop (112x96 is 1.17)
DLIB_CROP = (112, 112)  # what the dlib backend expects: face align's ArcFace crop
DETECTOR_SAMPLE = 20
SMALL_BOX = 0.6  # a detected face box under this fraction of the frame: a photo, not a crop
ADVICE = "run `facevox face align` first, or pass --refuse-unaligned"


@dataclass
class CropCheck:
    """Counts of checked and unaligned-looking images over one scorer's life, and the first of them."""

    checked: int = 0
    unaligned: int = 0
    first: str = ""
    detail: str = ""  # the first one's size, and the face box found inside it
    warned: bool = False
    seen: set = field(default_factory=set)

    def message(self) -> str:
        return (f"{self.unaligned} of {self.checked} images do not look like aligned face crops "
                f"(first: {self.first}: {self.detail}): {ADVICE}")

    def add(self, items: Sequence[tuple[str, np.ndarray | None, tuple[int, int] | None]],
            expected: tuple[int, int], detect: bool) -> None:
        """Count ``items`` (name, decoded image or None, (height, width) or None when unreadable)
        not seen before; ``detect``: run dlib's detector on a sample (the dlib backend)."""
        items = [(n, img, hw) for n, img, hw in items if hw is not None and n not in self.seen]
        self.seen.update(n for n, _, _ in items)
        self.checked += len(items)
        over = {n for n, _, (h, w) in items if h > OVERSIZE * expected[0] or w > OVERSIZE * expected[1]
                or (detect and max(h, w) > MAX_ASPECT * min(h, w))}
        boxes: dict[str, tuple[str, tuple[int, int]] | None] = {}
        if detect and items:
            boxes = _sample_boxes(items, over)
        small = {n for n, b in boxes.items() if b is not None and b[0] == "small"}
        cleared = {n for n, b in boxes.items() if b is not None and b[0] == "crop"}
        sampled_over = over & set(boxes)
        if sampled_over and sampled_over <= cleared:
            over = set()  # the oversized images the detector looked at are all large crops
        bad = [(n, hw) for n, _, hw in items if (n in over and n not in cleared) or n in small]
        if bad and not self.first:
            name, (h, w) = bad[0]
            box = boxes.get(name)
            self.first = name
            self.detail = f"{w}x{h}" + (f", face box {box[1][1]}x{box[1][0]} found inside"
                                        if box is not None and box[0] == "small" else "")
        self.unaligned += len(bad)

    def refuse(self) -> None:
        """Raise when images were counted (the error names the first of them)."""
        if self.unaligned:
            raise FacevoxError(f"{self.detail}: {self.unaligned} of {self.checked} images do not look like aligned "
                               "face crops (--refuse-unaligned); run `facevox face align` first", self.first)

    def warn(self) -> None:
        """Print the line on stderr, once, when images were counted; called once the results are out,
        so that an error stays the only line."""
        if self.unaligned and not self.warned:
            self.warned = True
            if int(os.environ.get("RANK", 0)) == 0:  # under torchrun: once, not once per rank
                print(f"warning: {self.message()}", file=sys.stderr)


def _sample_boxes(items, over: set) -> dict[str, tuple[str, tuple[int, int]] | None]:
    """dlib's verdict on a sample of ``items``: name -> ("small" or "crop", (box h, box w)), or None
    when no face was found (no verdict)."""
    from facevox.image.dlib_models import face_detector
    from facevox.image.io import load_image

    order = [i for i, (n, _, _) in enumerate(items) if n in over]
    rest = [i for i in range(len(items)) if items[i][0] not in over]
    spread = [rest[int(j)] for j in np.linspace(0, len(rest) - 1, min(len(rest), DETECTOR_SAMPLE))] if rest else []
    picks = (order + spread)[:DETECTOR_SAMPLE]
    detector = face_detector()
    out: dict[str, tuple[str, tuple[int, int]] | None] = {}
    for i in picks:
        name, img, (h, w) = items[i]
        if img is None:
            try:
                img = load_image(name)
            except FacevoxError:
                continue  # the loader reports it
        rects = list(detector(np.ascontiguousarray(img), 0))
        if not rects:
            out[name] = None
            continue
        r = max(rects, key=lambda r: r.width() * r.height())
        bh, bw = int(r.height()), int(r.width())
        out[name] = ("small" if max(bh, bw) < SMALL_BOX * min(h, w) else "crop", (bh, bw))
    return out


def header_sizes(paths: Sequence[Path]) -> list[tuple[str, None, tuple[int, int] | None]]:
    """(name, None, (height, width)) of each file from its header alone (None when unreadable)."""
    from facevox.image.io import image_size

    out = []
    for p in paths:
        try:
            w, h = image_size(p)
        except FacevoxError:
            out.append((str(p), None, None))
            continue
        out.append((str(p), None, (h, w)))
    return out
