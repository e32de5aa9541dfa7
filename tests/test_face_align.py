"""Face detection and alignment: the similarity fit, alignment of synthetic landmark dots onto the
ArcFace template, the no-face / several-faces reports, and a folder run with a bad file."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest
from PIL import Image

from facevox.errors import FacevoxError
from facevox.image import face_align as fa
from facevox.image.face_align import (
    ARCFACE_TEMPLATE_112,
    AlignResult,
    ARCFACE_TEMPLATE_112x96,
    FacePoints,
    align_face,
    align_folder,
    align_image,
    resize_aligned,
    similarity_transform,
)

pytest.importorskip("cv2")

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], dtype=float)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def dots_image(points: np.ndarray, shape: tuple[int, int], radius: float) -> np.ndarray:
    """Black RGB image with a filled dot of colour COLOURS[k] centred on points[k] (sub-pixel)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = np.zeros((*shape, 3), dtype=np.uint8)
    for (x, y), c in zip(points, COLOURS, strict=False):
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = c.astype(np.uint8)
    return img


def dot_centres(img: np.ndarray, n: int = 5) -> np.ndarray:
    """Intensity-weighted centroid of each colour's dot: pixels nearest to that colour (not black)."""
    pix = img.reshape(-1, 3).astype(float)
    palette = np.vstack([np.zeros(3), COLOURS[:n]])
    # nearest palette entry after normalising brightness, so a dimmed edge pixel keeps its hue
    norm = pix / np.maximum(pix.max(1, keepdims=True), 1) * 255
    label = np.argmin(((norm[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    label[pix.max(1) < 40] = 0
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    out = []
    for k in range(1, n + 1):
        w = np.where(label == k, pix.max(1), 0.0)
        assert w.sum() > 0, f"dot {k} is missing from the crop"
        out.append([(w * xx.ravel()).sum() / w.sum(), (w * yy.ravel()).sum() / w.sum()])
    return np.array(out)


# --- similarity_transform -------------------------------------------------------------------------


@pytest.mark.parametrize(("angle", "scale", "tx", "ty"), [(0, 1, 0, 0), (23.5, 2.7, 41.0, -13.0), (-170, 0.31, 5, 300)])
def test_similarity_transform_recovers_known_transform(angle, scale, tx, ty):
    m = similarity(angle, scale, tx, ty)
    src = np.random.default_rng(0).uniform(-50, 150, size=(7, 2))
    np.testing.assert_allclose(similarity_transform(src, apply(m, src)), m, atol=1e-9)
    np.testing.assert_allclose(similarity_transform(src[:2], apply(m, src[:2])), m, atol=1e-9)  # 2 points: exact


def test_similarity_transform_matches_skimage_on_noisy_points():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = apply(similarity(-31, 0.8, 12, 7), src) + rng.normal(scale=2.0, size=src.shape)
    if hasattr(skt.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        ref = skt.SimilarityTransform.from_estimate(src, dst)
    else:
        ref = skt.SimilarityTransform()
        assert ref.estimate(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), ref.params[:2], atol=1e-8)


def test_similarity_transform_never_reflects_and_rejects_degenerate_points():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [7.0, 3.0]])
    mirrored = src * [-1.0, 1.0]
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((3, 2)), src[:3])
    with pytest.raises(ValueError):
        similarity_transform(src, src[:3])


# --- align_face on synthetic landmark dots ----------------------------------------------------------


@pytest.mark.parametrize(("angle", "scale", "shape"), [
    (17.0, 2.3, (400, 360)),  # face 2.3x larger than the crop, rolled 17 degrees
    (-8.0, 0.9, (160, 150)),  # slightly smaller than the crop: upscaled
    (35.0, 4.6, (760, 700)),  # shrunk more than twofold: the area pre-shrink path
])
def test_align_face_puts_landmark_dots_on_the_template(angle, scale, shape):
    m = similarity(angle, scale, shape[1] * 0.25, shape[0] * 0.2)
    landmarks = apply(m, ARCFACE_TEMPLATE_112)
    img = dots_image(landmarks, shape, radius=2.6 * scale)
    crop = align_face(img, landmarks)
    assert crop.dtype == np.uint8 and crop.shape == (112, 112, 3)
    err = np.linalg.norm(dot_centres(crop) - ARCFACE_TEMPLATE_112, axis=1)
    assert err.max() < 1.0, err


def test_align_face_112x96_uses_the_template_shifted_by_8():
    np.testing.assert_allclose(ARCFACE_TEMPLATE_112x96[:, 0], ARCFACE_TEMPLATE_112[:, 0] - 8)
    m = similarity(-12.0, 1.8, 70, 40)
    landmarks = apply(m, ARCFACE_TEMPLATE_112)
    crop = align_face(dots_image(landmarks, (320, 300), radius=4.5), landmarks, size=(112, 96))
    assert crop.shape == (112, 96, 3)
    assert np.linalg.norm(dot_centres(crop) - ARCFACE_TEMPLATE_112x96, axis=1).max() < 1.0


def test_align_face_border_is_constant_black_and_bad_input_is_refused():
    grey = np.full((120, 120, 3), 200, dtype=np.uint8)
    landmarks = apply(similarity(0, 0.5, -20, -20), ARCFACE_TEMPLATE_112)  # face over the top-left corner
    crop = align_face(grey, landmarks)
    assert crop[0, 0].tolist() == [0, 0, 0] and crop[-1, -1].tolist() == [200, 200, 200]
    with pytest.raises(ValueError):
        align_face(grey, landmarks[:3])
    with pytest.raises(FacevoxError):
        align_face(grey, landmarks, size=(4, 4))


def test_dlib_nose_bottom_target_sits_below_the_nose_tip():
    nose_tip = ARCFACE_TEMPLATE_112[2]
    assert abs(fa.DLIB_NOSE_BASE_112[0] - nose_tip[0]) < 1.0
    assert 5.0 < fa.DLIB_NOSE_BASE_112[1] - nose_tip[1] < 10.0


def test_dlib_points_are_mapped_to_eye_centres_and_nose(monkeypatch):
    """dlib's 5 points (eye corners, nose bottom) -> 2 eye centres + nose, fitted onto the template."""
    pytest.importorskip("dlib")
    m = similarity(10.0, 150.0, 40, 30)  # dlib's canonical unit-square face, scaled into the image
    parts = apply(m, fa.DLIB5_CANONICAL)

    class Part:
        def __init__(self, x, y):
            self.x, self.y = x, y

    class Shape:
        def part(self, i):
            return Part(*parts[i])

    monkeypatch.setattr(fa, "_dlib_models", lambda: (None, lambda image, rect: Shape()))
    marks = fa.face_landmarks(np.zeros((200, 200, 3), np.uint8), (40, 30, 150, 150), "dlib")
    assert marks.method == "dlib-5pt"
    np.testing.assert_allclose(marks.points[0], parts[2:4].mean(0))  # left of the image
    np.testing.assert_allclose(marks.points[1], parts[0:2].mean(0))
    np.testing.assert_allclose(marks.points[2], parts[4])
    # dlib's canonical face fits the targets exactly (up to the float precision of the stored parts)
    fit = similarity_transform(marks.points, marks.template)
    np.testing.assert_allclose(apply(fit, marks.points), marks.template, atol=0.05)


# --- detection outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["haar", "dlib"])
def test_blank_image_gives_no_face_found(backend):
    if backend == "dlib":
        pytest.importorskip("dlib")
        if importlib.util.find_spec("face_recognition_models") is None:
            pytest.skip("needs face-recognition-models")
    res = align_image(np.full((200, 200, 3), 128, dtype=np.uint8), backend)
    assert not res.ok and res.faces == 0 and res.status == "no face found" and res.problem == "no face found"


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(FacevoxError, match="haar, dlib"):
        fa.detect_faces(np.zeros((50, 50, 3), np.uint8), "mtcnn")


def test_large_photos_are_searched_shrunk_and_boxes_come_back_in_photo_pixels(monkeypatch):
    seen = []

    class FakeCascade:
        def detectMultiScale(self, grey, **kw):  # noqa: N802 (OpenCV's name)
            seen.append(grey.shape)
            return np.array([[100, 50, 200, 200], [0, 0, 10, 10]])  # the second is below min_size

    monkeypatch.setattr(fa, "_haar", lambda name: FakeCascade())
    boxes = fa.detect_faces(np.zeros((1024, 2048, 3), np.uint8), "haar", max_side=1024)
    assert seen == [(512, 1024)] and boxes == [(200, 100, 400, 400)]


def test_several_faces_are_reported_or_the_largest_kept_on_request(monkeypatch):
    boxes = [(10, 10, 40, 40), (100, 60, 80, 80)]
    monkeypatch.setattr(fa, "detect_faces", lambda image, backend, **kw: list(boxes))
    img = np.full((200, 200, 3), 90, dtype=np.uint8)
    res = align_image(img, "haar")
    assert not res.ok and res.faces == 2 and res.status == "2 faces found" and res.crop is None
    res = align_image(img, "haar", largest=True)
    assert res.ok and res.box == (100, 60, 80, 80) and res.crop.shape == (112, 112, 3)
    assert res.status == "ok, largest of 2 faces" and res.problem == "2 faces found, kept the largest"
    assert res.method == "haar-box"  # no eyes on a flat image: the box-based crop
    assert AlignResult(faces=1, crop=res.crop).problem is None


# --- align_folder -----------------------------------------------------------------------------------


def fake_backend(monkeypatch, landmarks: np.ndarray) -> list[int]:
    """Detector: one face unless the image is blank; landmarks: the known dot positions."""
    calls = [0]

    def detect(image, backend, **kw):
        calls[0] += 1
        return [] if image.max() == image.min() else [(0, 0, image.shape[1], image.shape[0])]

    monkeypatch.setattr(fa, "detect_faces", detect)
    monkeypatch.setattr(fa, "face_landmarks",
                        lambda image, box, backend: FacePoints(landmarks, ARCFACE_TEMPLATE_112, "given"))
    return calls


def test_align_folder_writes_crops_and_reports_the_rest(tmp_path, monkeypatch):
    src, dst = tmp_path / "photos", tmp_path / "aligned"
    (src / "alice").mkdir(parents=True)
    (src / "bob").mkdir()
    landmarks = apply(similarity(12.0, 2.0, 70, 50), ARCFACE_TEMPLATE_112)
    Image.fromarray(dots_image(landmarks, (330, 320), radius=5.0)).save(src / "alice" / "good.png")
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(src / "alice" / "blank.jpg")
    (src / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    calls = fake_backend(monkeypatch, landmarks)

    report = align_folder(src, dst, backend="haar", progress_every=1)
    crop = np.asarray(Image.open(dst / "alice" / "good.png"))
    assert crop.shape == (112, 112, 3)
    assert np.linalg.norm(dot_centres(crop) - ARCFACE_TEMPLATE_112, axis=1).max() < 1.0
    assert sorted(p.name for p in dst.rglob("*.png")) == ["good.png"]
    assert {p.name: why for p, why in report}.keys() == {"blank.jpg", "broken.jpg"}
    assert dict((p.name, why) for p, why in report)["blank.jpg"] == "no face found"
    assert dict((p.name, why) for p, why in report)["broken.jpg"].startswith("unreadable: cannot decode")

    with open(dst / "align_report.csv", newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert rows.keys() == {"alice/blank.jpg", "alice/good.png", "bob/broken.jpg"}
    assert (rows["alice/good.png"]["status"], rows["alice/good.png"]["faces"]) == ("ok", "1")
    assert (rows["alice/blank.jpg"]["status"], rows["alice/blank.jpg"]["faces"]) == ("no face found", "0")
    assert rows["bob/broken.jpg"]["status"].startswith("unreadable:")

    # resuming: the existing crop is kept, the others are tried again and still reported
    before = calls[0]
    report = align_folder(src, dst, backend="haar", skip_existing=True, progress_every=0)
    assert calls[0] == before + 1 and len(report) == 2


def test_align_folder_refuses_output_inside_the_photos(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a" / "x.png")
    with pytest.raises(FacevoxError, match="inside"):
        align_folder(tmp_path, tmp_path / "aligned")


# --- already aligned crops --------------------------------------------------------------------------


@pytest.mark.parametrize(("in_shape", "size"), [
    ((250, 250), (112, 112)), ((250, 250), (112, 96)), ((100, 80), (112, 112)), ((64, 64), (112, 112)),
])
def test_resize_aligned_shapes(in_shape, size):
    img = np.random.default_rng(0).integers(0, 256, size=(*in_shape, 3), dtype=np.uint8)
    out = resize_aligned(img, size)
    assert out.dtype == np.uint8 and out.shape == (*size, 3)


def test_resize_aligned_cuts_the_centre_instead_of_stretching():
    img = np.zeros((200, 100, 3), np.uint8)
    img[50:150] = 255  # the central square is white, the top and bottom quarters black
    assert resize_aligned(img, (112, 112)).min() == 255


# --- a real-looking face: DCGAN faces (gan-face-generate) -------------------------------------------


def test_detectors_find_and_agree_on_generated_faces():
    """DCGAN 64x64 faces, upscaled to 192 and padded to 256: each backend finds most of them, and
    the Haar crop puts dlib's eye centres near the template's eyes. Detection per face is not
    reliable on these (about 3 in 4 are found), so only counts over 16 faces are checked."""
    pytest.importorskip("gan_face_generate")
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("needs face-recognition-models")
    import cv2
    import torch

    from facevox.nets.dcgan import load_gan_face_generator

    torch.manual_seed(0)
    with torch.no_grad():
        x = load_gan_face_generator()(torch.randn(16, 100))
    faces = ((x.permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).round().astype(np.uint8)
    found = {"haar": 0, "dlib": 0}
    errors = []
    for face in faces:
        img = cv2.copyMakeBorder(cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC),
                                 32, 32, 32, 32, cv2.BORDER_REPLICATE)
        res = {b: align_image(img, b) for b in found}
        for b, r in res.items():
            found[b] += r.ok
            assert r.faces <= 1
        if res["haar"].ok and res["dlib"].ok:
            haar = fa.face_landmarks(img, res["haar"].box, "haar")
            m = similarity_transform(haar.points, haar.template)
            dlib_eyes = fa.face_landmarks(img, res["dlib"].box, "dlib").points[:2]
            errors.append(np.linalg.norm(apply(m, dlib_eyes) - ARCFACE_TEMPLATE_112[:2], axis=1).max())
    assert found["haar"] >= 8 and found["dlib"] >= 8, found
    assert len(errors) >= 6 and np.median(errors) < 6.0, errors


# --- face align refuses to write over (or among) the photos -----------------------------------------


def _photo_tree(root) -> dict:
    """Two identities of small photos; returns {path: bytes} to check nothing changed."""
    rng = np.random.default_rng(3)
    for person in ("alice", "bob"):
        (root / person).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(root / person / f"{i}.png")
    return _snapshot(root)


def _snapshot(root) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("where", ["same", "inside", "link_to_src", "link_inside"])
def test_align_refuses_an_output_folder_in_the_photos(tmp_path, aligned, where):
    from facevox.cli import main

    src = tmp_path / "photos"
    before = _photo_tree(src)
    out = {"same": src, "inside": src / "alice" / "crops", "link_to_src": tmp_path / "link",
           "link_inside": tmp_path / "link" / "aligned"}[where]
    if where.startswith("link"):
        (tmp_path / "link").symlink_to(src, target_is_directory=True)
    argv = ["face", "align", str(src), "--out", str(out), "--size", "16", "16"]
    assert main([*argv, "--aligned"] if aligned else argv) == 2
    assert _snapshot(src) == before  # not a byte written, no file added
    from facevox.tasks.face.align import align_command

    with pytest.raises(FacevoxError, match="photo folder") as err:
        align_command(src, out, backend="haar", size=(16, 16), largest=False, aligned=aligned)
    assert "\n" not in str(err.value) and str(out) in str(err.value)
    assert _snapshot(src) == before


def test_align_cli_error_is_one_line(tmp_path, capsys):
    from facevox.cli import main

    src = tmp_path / "photos"
    _photo_tree(src)
    assert main(["face", "align", str(src), "--out", str(src), "--aligned"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facevox: error:") and "is the photo folder" in err[0]


def test_align_photos_inside_the_output_folder(tmp_path):
    """Photos in OUT/raw: fine, unless a crop would land inside OUT/raw (a sub-folder also called raw)."""
    from facevox.tasks.face.align import align_command

    out = tmp_path / "data"
    src = out / "raw"
    _photo_tree(src)
    align_command(src, out, backend="haar", size=(16, 16), largest=False, aligned=True)
    assert Image.open(out / "alice" / "0.png").size == (16, 16)

    (src / "raw").mkdir()  # raw/raw/alice/0.png would be written to data/raw/alice/0.png: a photo
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "raw" / "x.png")
    before = _snapshot(tmp_path)
    with pytest.raises(FacevoxError, match="would be written inside the photo folder"):
        align_command(src, out, backend="haar", size=(16, 16), largest=False, aligned=True)
    assert _snapshot(tmp_path) == before


def test_aligned_resize_keeps_photos_of_the_same_name_apart(tmp_path):
    from facevox.tasks.face.align import align_command

    src = tmp_path / "photos"
    (src / "alice").mkdir(parents=True)
    Image.fromarray(np.full((20, 20, 3), 10, np.uint8)).save(src / "alice" / "a.png")
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(src / "alice" / "a.jpg")
    align_command(src, tmp_path / "out", backend="haar", size=(16, 16), largest=False, aligned=True)
    crops = sorted(p.name for p in (tmp_path / "out" / "alice").iterdir())
    assert crops == ["a.jpg.png", "a.png.png"]  # as align_folder names them: neither overwrites the other
