"""``fakeface predict``: label and confidence per image, and ``fakeface explain``: saliency overlays."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text
from facevox.image.io import list_image_files, load_image
from facevox.outdir import output_dir, prepare_output, writing
from facevox.scores import check_finite_scores
from facevox.tasks.fakeface.data import CLASSES
from facevox.tasks.fakeface.scoring import Detector
from facevox.textfile import check_utf8_name


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the images under them (recursive, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += list_image_files(p)
        elif p.exists():
            out.append(p)
        else:
            raise FacevoxError("file not found", p)
    if not out:
        raise FacevoxError("no images given")
    for f in out:  # their names are printed and written into the predictions
        check_utf8_name(f)
    return out


def predict(model_dir: str | Path, paths: Sequence[str | Path], *, batch_size: int = 32, precision: str = "fp32",
            skip_bad: bool = False, progress: bool = True, device: str = "auto", workers: int = 0,
            ) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """One row per image: path, label (real/fake), confidence in that label, P(fake). Bad files are
    an error, or (``skip_bad``) left out and returned as ``(path, problem)``. Images are decoded and
    resized in ``workers`` DataLoader processes (0: in this one) and scored ``batch_size`` at a time
    on ``device`` in ``precision``."""
    det = Detector.load(str(model_dir), use="fakeface predict", batch_size=batch_size, precision=precision,
                        device=device)
    files = expand_paths(paths)
    bar = _Progress(len(files)) if progress and len(files) > batch_size else None
    kept, probs, bad = det.score_files(files, workers=workers, skip_bad=skip_bad, progress=bar.update if bar else None)
    chunk = [files[i] for i in kept]
    check_finite_scores(probs, [f"P(fake) of {f}" for f in chunk], det.where)
    rows: list[dict[str, Any]] = []
    for f, pf in zip(chunk, probs, strict=True):
        fake = bool(pf >= det.threshold)
        rows.append({"path": str(f), "label": CLASSES[int(fake)], "confidence": float(pf if fake else 1 - pf),
                     "p_fake": float(pf)})
    return rows, bad


class _Progress:
    """A one-line progress count on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.tty = total, 0, sys.stderr.isatty()

    def update(self, n: int) -> None:
        self.done += n
        if self.tty or self.done == self.total:
            end = "\r" if self.tty and self.done < self.total else "\n"
            print(f"predict: {self.done}/{self.total} images", end=end, file=sys.stderr, flush=True)


def write_predictions(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """``.json`` (a list of objects) or ``.csv`` by the file's suffix; written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(rows, indent=1) + "\n"
    elif path.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["path", "label", "confidence", "p_fake"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    else:
        raise FacevoxError("output must end in .json or .csv", path)
    with writing(path):  # a full disk or a read-only folder: one line, the old file kept
        return atomic_write_text(path, text)


def explain_images(model_dir: str | Path, paths: Sequence[str | Path], out: str | Path, *,
                   methods: Sequence[str], target: str = "predicted", device: str = "auto",
                   precision: str = "fp32") -> list[Path]:
    """Write OUT/<image>_saliency.png (image + one overlay per method) and OUT/saliency.png (all rows).

    The model runs on ``device``; ``precision`` applies to the forward pass that gives P(fake) (and
    the predicted class to explain). The attributions are always computed in fp32: bf16 gradients
    carry 8 bits of mantissa, too coarse for gradient-based saliency (Integrated Gradients sums
    many of them)."""
    from facevox.explain.overlay import plot_saliency_grid
    from facevox.tasks.fakeface.saliency import saliency_maps, usable_methods

    prepare_output(out)  # a wrong --out fails now, before the model is loaded
    det = Detector.load(str(model_dir), use="fakeface explain", device=device, precision=precision)
    files = expand_paths(paths)
    images = det.prepare([load_image(f) for f in files])
    chosen = usable_methods(det.model, methods)
    if not chosen:
        raise FacevoxError(f"none of {', '.join(methods)} applies to this model (Grad-CAM needs a CNN)", model_dir)
    p = det.probs(images)
    check_finite_scores(p, [f"P(fake) of {f}" for f in files], det.where)
    targets = [CLASSES[int(pi >= det.threshold)] if target == "predicted" else target for pi in p]
    maps = saliency_maps(det.model, images, chosen, targets)
    out = Path(out)
    names = [f"{i:03d}_{f.stem}_saliency.png" for i, f in enumerate(files)]
    names += ["saliency.png"] if len(files) > 1 else []
    with output_dir(out, "fakeface explain") as staged:  # all figures in a new folder, swapped in at the end
        for i, (f, name) in enumerate(zip(files, names, strict=False)):
            title = f"{f.name}: P(fake) {p[i]:.2f}, explaining '{targets[i]}'"
            plot_saliency_grid([images[i]], {m: [maps[m][i]] for m in chosen}, staged / name, [title])
        if len(files) > 1:
            plot_saliency_grid(images, maps, staged / "saliency.png",
                               [f"{f.name} P(fake) {pi:.2f}" for f, pi in zip(files, p, strict=True)])
    return [out / name for name in names]


def show_predictions(out: str | Path | None, rows: list[dict[str, Any]]) -> None:
    """``predict`` commands' output: ``out`` written (a line saying so), or one tab-separated line per row."""
    if out:
        write_predictions(out, rows)
        print(f"{len(rows)} predictions -> {out}")
    else:
        for r in rows:
            print(f"{r['path']}\t{r['label']}\t{r['confidence']:.4f}")
