"""InsightFace validation sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``): read safely and score.

Such a file is a pickle of ``(bins, issame_list)``: ``bins`` holds 2 encoded images (JPEG or PNG
bytes, 112x112 aligned crops) per pair, the two of a pair consecutive; ``issame_list`` one bool per
pair. The pickle is read with :class:`RestrictedUnpickler`, which builds no Python object but
bytes, strings, numbers, bools, lists, tuples and dicts, plus exactly what the known variants of
these files need: ``_codecs.encode`` with latin-1 (how protocol 2 stores bytes), ``bytearray`` of
bytes, and numpy's array reconstruction (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``) for files that store the labels as a numpy bool array. Any other global (a class, a
function such as ``os.system``) is refused before it is looked up, with one line naming the file.

Images are decoded one batch at a time (DataLoader workers when asked): the encoded bytes are the
file's and stay in memory, decoded crops do not. Accuracy follows InsightFace: 10 folds of
consecutive pairs (sizes as ``sklearn.model_selection.KFold(10)``), each fold's threshold chosen on
the other nine (the best-accuracy threshold, not InsightFace's 0.01 grid of distances).
"""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from facevox.errors import FacevoxError

FORMATS = ("JPEG", "PNG", "BMP")  # what the crops of these files are encoded as; nothing else is tried


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: a str and latin-1, nothing else."""
    if not isinstance(text, str) or encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as bytes are pickled (a str, latin-1)")
    return text.encode("latin-1")


def _bytearray(data: Any = b"") -> bytearray:
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("bytearray is allowed only of bytes")
    return bytearray(data)


def _allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {("_codecs", "encode"): _latin1_encode,
            ("builtins", "bytearray"): _bytearray, ("__builtin__", "bytearray"): _bytearray,
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads data, never code: every global outside :func:`_allowed` is refused."""

    def __init__(self, file: Any, where: str | Path) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as InsightFace's own loader reads them
        self.where = where
        self.allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise FacevoxError(f"the pickle asks for the Python object {module}.{name}; facevox refuses to load "
                               "Python objects (an InsightFace .bin holds only image bytes and booleans)", self.where)
        return found


def _labels(issame: Any, where: Path) -> np.ndarray:
    if isinstance(issame, np.ndarray):
        if issame.ndim != 1 or issame.dtype.kind not in "biu":
            raise FacevoxError(f"issame_list must be booleans, got a numpy array of {issame.dtype} {issame.shape}",
                               where)
        values = issame.tolist()
    elif isinstance(issame, (list, tuple)):
        values = list(issame)
    else:
        raise FacevoxError(f"issame_list must be a list of booleans, got {type(issame).__name__}", where)
    if not all(isinstance(v, (bool, np.bool_)) or (isinstance(v, int) and v in (0, 1)) for v in values):
        raise FacevoxError("issame_list must hold only booleans", where)
    return np.array(values, dtype=bool)


def read_bin(path: str | Path) -> tuple[list[bytes], np.ndarray]:
    """``(encoded images, same (pairs,) bool)`` of an InsightFace ``.bin``; images ``2i`` and ``2i+1``
    are pair ``i``. Every problem (not a pickle, truncated, Python objects, wrong layout) is one
    :class:`FacevoxError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("file not found" if not path.exists() else "not a file", path)
    data = path.read_bytes()
    if not data:
        raise FacevoxError("empty file (0 bytes)", path)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), path).load()
    except FacevoxError:
        raise
    except MemoryError:
        raise FacevoxError("not enough memory to read this file", path) from None
    except EOFError:
        raise FacevoxError("truncated: the pickle ends early (an incomplete download?)", path) from None
    except Exception as err:  # a corrupt or foreign file fails in many ways inside the unpickler
        reason = " ".join(str(err).split()) or type(err).__name__
        raise FacevoxError(f"not a readable InsightFace .bin (a pickle of (bins, issame_list)): {reason}",
                           path) from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise FacevoxError(f"expected a pickle of (bins, issame_list), got {type(obj).__name__}", path)
    bins, issame = obj
    if not isinstance(bins, (list, tuple)):
        raise FacevoxError(f"bins must be a list of encoded images, got {type(bins).__name__}", path)
    images = []
    for i, b in enumerate(bins):
        if isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.ndim == 1:
            b = b.tobytes()
        if not isinstance(b, (bytes, bytearray)):
            raise FacevoxError(f"bins[{i}] is {type(b).__name__}, not the bytes of an encoded image", path)
        images.append(bytes(b))
    same = _labels(issame, path)
    if len(images) != 2 * len(same):
        raise FacevoxError(f"{len(images)} images for {len(same)} pairs; expected 2 per pair", path)
    if not len(same):
        raise FacevoxError("no pairs", path)
    return images, same


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded JPEG/PNG/BMP bytes -> uint8 RGB (H, W, 3), with :mod:`facevox.image.io`'s checks."""
    from PIL import Image, UnidentifiedImageError

    from facevox.image.io import MAX_PIXELS, _to_rgb

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise FacevoxError(f"image claims {img.width} x {img.height} pixels, more than the limit; "
                                       "not decoded", where)
                img.load()
                rgb = _to_rgb(img)
    except Image.DecompressionBombError:
        raise FacevoxError("image claims more pixels than the limit; not decoded", where) from None
    except UnidentifiedImageError:
        raise FacevoxError(f"cannot decode: not a {'/'.join(FORMATS)} image", where) from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise FacevoxError(f"cannot decode: {'truncated image' if 'truncated' in reason else reason}",
                           where) from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise FacevoxError(f"decoded to an unusable shape {arr.shape}", where)
    return arr


class BinImages(Dataset):
    """item -> (index, uint8 RGB crop resized to ``size``, None), or (index, None, (problem, where))."""

    def __init__(self, images: list[bytes], where: str | Path, size: tuple[int, int] | None) -> None:
        self.images, self.where, self.size = images, str(where), size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from facevox.tasks.face.data import resize_to

        try:
            img = decode_image(self.images[i], f"{self.where}: image {i} (pair {i // 2 + 1})")
        except FacevoxError as err:
            return i, None, (err.problem, err.where)
        return i, (resize_to(img, self.size) if self.size else img), None


def embed_bin(images: list[bytes], where: str | Path, scorer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (n, D) float32 of the encoded crops and which were decoded (n,) bool; a bad image
    stops with its error, or with ``scorer.skip_bad`` is left out and listed on stderr."""
    from facevox.verification.extract import _loader, _Progress

    shown = _Progress(len(images), len(images) > 200, "images")
    emb: np.ndarray | None = None
    ok = np.zeros(len(images), dtype=bool)
    bad: list[tuple[str, str]] = []
    todo: list[tuple[int, np.ndarray]] = []

    def run() -> None:
        nonlocal emb
        out = np.asarray(scorer.embed([img for _, img in todo]), dtype=np.float32)
        if emb is None:
            emb = np.zeros((len(images), out.shape[-1]), dtype=np.float32)
        for (i, _), e in zip(todo, out, strict=True):
            emb[i], ok[i] = e, True
        shown.step(len(todo))
        todo.clear()

    for batch in _loader(BinImages(images, where, scorer.size), scorer.workers):
        for i, img, problem in batch:
            if img is None:
                if not scorer.skip_bad:
                    raise FacevoxError(*problem)
                bad.append((problem[1], problem[0]))
                shown.step()
                continue
            todo.append((i, img))
            if len(todo) == scorer.batch_size:
                run()
    if todo:
        run()
    if bad:
        print(f"skipped {len(bad)} bad image(s):", file=sys.stderr)
        for at, problem in bad:
            print(f"  {at}: {problem}", file=sys.stderr)
    if emb is None:
        raise FacevoxError("no image of the file could be decoded", where)
    return emb, ok


def fold_ids(n: int, folds: int = 10) -> np.ndarray:
    """Fold of each of ``n`` consecutive pairs: ``folds`` blocks, sizes as ``np.array_split``."""
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    return np.repeat(np.arange(folds), sizes)


def evaluate_bin(path: str | Path, out: str | Path, scorer: Any, folds: int = 10) -> dict[str, Any]:
    """Score an InsightFace ``.bin`` with ``scorer`` (a :class:`~facevox.tasks.face.evaluate.FaceScorer`):
    ``folds``-fold accuracy over consecutive pairs, EER, ROC-AUC, TAR@FAR; report in OUT."""
    from facevox.outdir import prepare_output
    from facevox.scores import check_finite_scores
    from facevox.tasks.face.evaluate import verification_outputs
    from facevox.verification.extract import check_one_process

    check_one_process("face")
    prepare_output(out)
    images, same = read_bin(path)
    n = len(same)
    if n < folds:
        raise FacevoxError(f"{n} pairs cannot fill {folds} folds", path)
    emb, ok = embed_bin(images, path, scorer)
    keep = ok[0::2] & ok[1::2]
    if not keep.all():
        print(f"left out {int((~keep).sum())} of {n} pairs with a skipped image", file=sys.stderr)
    scores = scorer.score(emb[0::2][keep].astype(np.float64), emb[1::2][keep].astype(np.float64))
    check_finite_scores(scores, [f"pair {i + 1} of {path}" for i in np.flatnonzero(keep)], scorer.where)
    labels = same[keep].astype(int)
    notes = [f"scorer: {scorer.name}", f"pairs: {path} (InsightFace .bin, {int(keep.sum())} pairs, {folds} folds of "
             "consecutive pairs)"]
    return verification_outputs(scores, labels, fold_ids(n, folds)[keep], out, scorer, notes,
                                {"pairs_file_folds": folds, "source": "insightface-bin"})
