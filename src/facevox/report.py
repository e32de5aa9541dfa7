"""Evaluation figures (PNG) and a one-page, self-contained HTML report per run.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly rather than through
``pyplot``, so nothing here touches matplotlib's global state or needs a display. Every file is
written through :func:`facevox.fileio.atomic_path`, so a crashed run (matplotlib raising half-way
through a PNG included) never leaves half a PNG or half a page behind. The standard reports
(:func:`verification_report`, :func:`classification_report`) write their whole folder as one unit
through :func:`facevox.outdir.output_dir`: into a temporary folder next to ``out_dir``, swapped into
place at the end, so an old report is never mixed with new metrics, and a full disk is one line
with the old report left intact. That also means ``out_dir`` must be new, empty, or an earlier
output (see :mod:`facevox.outdir`). Labels are binary throughout: 1 is the target / positive class.
"""

from __future__ import annotations

import csv
import html
import importlib.metadata
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from scipy.stats import norm

from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_json, atomic_write_text
from facevox.outdir import output_dir

DPI = 110
_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95)
_DET_CLIP = 1e-4  # probit(0) is -inf; points at 0 % are drawn just off the axes instead

Curves = Mapping[str, tuple[ArrayLike, ArrayLike]]


@dataclass(frozen=True)
class Table:
    """An extra table for :func:`write_html_report`; the standard reports also write it into
    metrics.json (``tables``: ``{caption: {"columns": [...], "rows": [[...], ...]}}``)."""

    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


# keys of metrics.json that the report shows as its tables and notes rather than as metrics
TABLES_KEY, NOTES_KEY = "tables", "notes"


def tables_json(tables: Sequence[Table]) -> dict[str, dict[str, list[Any]]]:
    """``{caption: {"columns": [...], "rows": [[...], ...]}}``; a repeated caption gets " (2)", " (3)"..."""
    out: dict[str, dict[str, list[Any]]] = {}
    for t in tables:
        key, n = t.caption, 2
        while key in out:
            key, n = f"{t.caption} ({n})", n + 1
        out[key] = {"columns": [str(h) for h in t.header], "rows": [list(r) for r in t.rows]}
    return out


# ----------------------------------------------------------------------------- plot helpers


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str | Path) -> Path:
    """PNG, or JPEG (quality 88) for a ``.jpg`` path: photo figures are a fifth of the size."""
    # the temporary name ends in ".tmp", so the format must be given explicitly
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as tmp:
        if jpeg:
            fig.savefig(tmp, format="jpeg", dpi=DPI, facecolor="white", pil_kwargs={"quality": 88})
        else:
            fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return Path(path)


def _binary(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Flatten and check a (scores, labels) pair (arrays or tensors); labels become booleans."""
    scores, labels = (x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in (scores, labels))
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise FacevoxError(f"{s.size} scores but {y.size} labels")
    if s.size == 0:
        raise FacevoxError("no scores given")
    if not np.all(np.isfinite(s)):
        raise FacevoxError("scores contain NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise FacevoxError("labels must be 0 or 1")
    return s, y.astype(bool)


def _curve_arrays(curves: Curves) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not curves:
        raise FacevoxError("no curves to plot")
    out = []
    for name, (x, y) in curves.items():
        x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
        if x.size != y.size or x.size == 0:
            raise FacevoxError(f"curve {name!r}: x and y must be non-empty and of equal length")
        out.append((str(name), x, y))
    return out


def _auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoid area under a ROC curve; NaN when the curve cannot give one."""
    if fpr.size < 2:
        return math.nan
    order = np.lexsort((tpr, fpr))
    x, y = fpr[order], tpr[order]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


# ----------------------------------------------------------------------------- plots


def plot_roc(curves: Curves, path: str | Path) -> Path:
    """ROC curves (name -> (fpr, tpr)) on linear axes with the chance diagonal."""
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    for name, fpr, tpr in _curve_arrays(curves):
        auc = _auc(fpr, tpr)
        ax.plot(fpr, tpr, lw=2, label=name if math.isnan(auc) else f"{name} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate",
        ylabel="True positive rate",
        title="ROC curve",
        aspect="equal",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return _save(fig, path)


def plot_det(curves: Curves, path: str | Path) -> Path:
    """DET curves (name -> (fpr, fnr)) on normal-deviate axes, with the EER line fpr = fnr."""
    data = _curve_arrays(curves)
    # show 0.1 %..50 % like the usual DET plot, widened when a poor system's EER lies beyond it
    worst = max(float(np.min(np.maximum(x, y))) for _, x, y in data)
    hi = next((t for t in _DET_TICKS if t >= min(worst * 1.5, 0.95)), 0.95)
    hi = max(hi, 0.5)
    lo = 0.0005
    ticks = [t for t in _DET_TICKS if t <= hi]
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    for name, fpr, fnr in data:
        k = int(np.argmin(np.abs(fpr - fnr)))
        eer = (fpr[k] + fnr[k]) / 2
        px = norm.ppf(np.clip(fpr, _DET_CLIP, 1 - _DET_CLIP))
        py = norm.ppf(np.clip(fnr, _DET_CLIP, 1 - _DET_CLIP))
        (line,) = ax.plot(px, py, lw=2, label=f"{name} (EER {100 * eer:.2f}%)")
        marker = norm.ppf(np.clip(eer, _DET_CLIP, 1 - _DET_CLIP))
        ax.plot(marker, marker, "o", color=line.get_color(), ms=5)
    lim = norm.ppf([lo, hi])
    ax.plot(lim, lim, ls="--", color="0.6", lw=1, label="EER line (FPR = FNR)")
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(norm.ppf(ticks), labels)
    ax.set_yticks(norm.ppf(ticks), labels)
    ax.set(
        xlim=lim,
        ylim=lim,
        xlabel="False positive rate (%)",
        ylabel="False negative rate (%)",
        title="DET curve",
        aspect="equal",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)  # DET curves leave the lower-left corner empty
    return _save(fig, path)


def plot_score_histogram(
    scores: ArrayLike,
    labels: ArrayLike,
    path: str | Path,
    threshold: float | None = None,
    names: Sequence[str] = ("non-target", "target"),
    *,
    xlabel: str = "Score",
) -> Path:
    """Overlaid density histograms of the scores of each class, with an optional threshold line."""
    s, y = _binary(scores, labels)
    # shared bin edges so the two densities are directly comparable; their number follows the
    # smaller class, whose histogram would otherwise be mostly noise
    n_bins = int(np.clip(1.5 * np.sqrt(min(y.sum(), (~y).sum()) or s.size), 10, 80))
    edges = np.linspace(s.min(), s.max(), n_bins + 1) if s.max() > s.min() else n_bins
    fig = _figure(5.6, 4.2)
    ax = fig.add_subplot()
    for cls, colour in ((False, "tab:blue"), (True, "tab:orange")):
        part = s[y == cls]
        if part.size:
            label = f"{names[int(cls)]} (n={part.size})"
            ax.hist(part, bins=edges, density=True, alpha=0.45, color=colour, label=label)
            ax.hist(part, bins=edges, density=True, histtype="step", color=colour, lw=1.2)
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set(xlabel=xlabel, ylabel="Density", title="Score distributions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_confusion(matrix: ArrayLike, class_names: Sequence[str], path: str | Path, normalise: bool = False) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) annotated with counts and row %.

    With ``normalise`` the colours show row fractions instead of raw counts, which keeps a rare
    class readable when the classes are unbalanced.
    """
    m = np.asarray(matrix, dtype=np.float64)
    k = len(class_names)
    if m.shape != (k, k):
        raise FacevoxError(f"confusion matrix has shape {m.shape}, expected ({k}, {k})")
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    shown = frac if normalise else m
    size = max(3.8, 1.1 * k + 2.2)
    fig = _figure(size + 0.8, size)
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else max(1.0, shown.max()))
    fig.colorbar(im, ax=ax, shrink=0.8, label="row fraction" if normalise else "count")
    for i in range(k):
        for j in range(k):
            dark = shown[i, j] > 0.55 * (1 if normalise else max(1.0, shown.max()))
            ax.text(
                j,
                i,
                f"{int(round(m[i, j]))}\n{100 * frac[i, j]:.1f}%",
                ha="center",
                va="center",
                color="white" if dark else "black",
                fontsize=11,
            )
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix")
    return _save(fig, path)


def plot_bars(values: Mapping[str, Mapping[str, float]], path: str | Path, ylabel: str, title: str = "",
              ylim: tuple[float, float] | None = None) -> Path:
    """Grouped bars: ``values[category][series]``, one group of bars per category (e.g. AP per perturbation)."""
    cats = list(values)
    if not cats:
        raise FacevoxError("no values to plot")
    series = list(dict.fromkeys(k for c in cats for k in values[c]))
    width = 0.8 / len(series)
    fig = _figure(max(4.5, 0.9 * len(cats) * max(1, len(series) / 2) + 1.5), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(cats))
    for i, name in enumerate(series):
        v = [values[c].get(name, np.nan) for c in cats]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, cats, rotation=20 if len(cats) > 5 else 0)
    ax.set(ylabel=ylabel, title=title)
    if ylim:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_reliability(probs: ArrayLike, labels: ArrayLike, path: str | Path, n_bins: int = 15) -> Path:
    """Reliability diagram: observed positive rate per probability bin, and the bin counts."""
    p, y = _binary(probs, labels)
    if p.min() < 0 or p.max() > 1:
        raise FacevoxError("probabilities must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    used = counts > 0
    conf = np.bincount(idx, weights=p, minlength=n_bins)[used] / counts[used]
    rate = np.bincount(idx, weights=y, minlength=n_bins)[used] / counts[used]
    centres = (edges[:-1] + edges[1:])[used] / 2
    fig = _figure(5.6, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.bar(
        centres, rate, width=1 / n_bins, color="tab:blue", alpha=0.6, edgecolor="white", label="observed positive rate"
    )
    top.plot(conf, rate, "o-", color="tab:red", ms=4, lw=1.2, label="mean prob. vs rate")
    top.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Fraction positive", title="Reliability diagram")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=9)
    bottom.bar((edges[:-1] + edges[1:]) / 2, counts, width=1 / n_bins, color="0.5", edgecolor="white")
    bottom.set(xlabel="Predicted probability", ylabel="Count")
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def _read_metrics_csv(metrics_csv: str | Path) -> dict[str, np.ndarray]:
    """Numeric columns of a training log; empty or unparsable cells become NaN."""
    try:
        with open(metrics_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise FacevoxError(f"cannot read training log: {err.strerror}", metrics_csv) from err
    if not rows or "step" not in rows[0]:
        raise FacevoxError("training log is empty or has no 'step' column", metrics_csv)

    def num(cell: str | None) -> float:
        try:
            return float(cell) if cell not in (None, "") else math.nan
        except ValueError:
            return math.nan

    columns = {key: np.array([num(r.get(key)) for r in rows]) for key in rows[0] if key}
    # a column with no parsable value at all (a run name, say) is not a metric
    return {key: col for key, col in columns.items() if not np.all(np.isnan(col))}


def plot_training_curves(metrics_csv: str | Path, path: str | Path, keys: Sequence[str] | None = None) -> Path:
    """One subplot per metric column of a training CSV, all against ``step`` (shared x axis)."""
    cols = _read_metrics_csv(metrics_csv)
    if "step" not in cols:
        raise FacevoxError("the 'step' column has no numbers", metrics_csv)
    keys = list(keys) if keys is not None else [k for k in cols if k not in ("step", "epoch")]
    missing = [k for k in keys if k not in cols]
    if missing or not keys:
        raise FacevoxError(f"no numeric column(s) {missing or 'to plot'} in training log", metrics_csv)
    fig = _figure(7.5, 0.5 + 2.1 * len(keys))
    axes = np.atleast_1d(fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0])
    for ax, key in zip(axes, keys, strict=True):
        ok = ~np.isnan(cols[key]) & ~np.isnan(cols["step"])
        x, v = cols["step"][ok], cols[key][ok]
        # per-step losses are noisy: draw them faintly under a centred moving average; smooth
        # series such as a learning-rate schedule are drawn as they are
        noisy = v.size > 50 and np.median(np.abs(np.diff(v))) > 0.01 * (np.ptp(v) + 1e-12)
        if noisy:
            w = max(5, v.size // 50)
            smooth = np.convolve(v, np.ones(w) / w, mode="valid")
            ax.plot(x, v, color="tab:blue", alpha=0.25, lw=0.8)
            ax.plot(
                x[(w - 1) // 2 :][: smooth.size], smooth, color="tab:blue", lw=1.6, label=f"{key} (mean of {w} steps)"
            )
            ax.legend(loc="best", fontsize=8)
        else:
            ax.plot(x, v, "o-" if v.size < 30 else "-", color="tab:blue", lw=1.6, ms=3)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].set_title("Training curves")
    axes[-1].set_xlabel("step")
    return _save(fig, path)


def _to_images(images: Any) -> list[np.ndarray]:
    """HxW or HxWx3 float arrays in [0, 1] from arrays, uint8 images or an NCHW tensor."""
    if hasattr(images, "detach"):  # a torch tensor; avoids importing torch here
        images = images.detach().cpu().float().numpy()
        if images.ndim != 4:
            raise FacevoxError(f"image tensor must be (N, C, H, W), got {tuple(images.shape)}")
        images = images.transpose(0, 2, 3, 1)
    out = []
    for img in images:
        a = np.asarray(img)
        a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
            raise FacevoxError(f"image must be HxW or HxWx3, got shape {a.shape}")
        out.append(np.clip(a, 0.0, 1.0))
    return out


def plot_image_grid(images: Any, path: str | Path, titles: Sequence[str] | None = None, ncols: int = 8) -> Path:
    """Contact sheet of images (HxW, HxWx3 uint8 or float in [0, 1], or an NCHW tensor)."""
    imgs = _to_images(images)
    if not imgs:
        raise FacevoxError("no images to plot")
    if titles is not None and len(titles) != len(imgs):
        raise FacevoxError(f"{len(titles)} titles for {len(imgs)} images")
    ncols = max(1, min(ncols, len(imgs)))
    nrows = math.ceil(len(imgs) / ncols)
    cell = 1.7
    fig = _figure(cell * ncols, (cell + (0.25 if titles else 0)) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
            if titles:
                ax.set_title(str(titles[i]), fontsize=8)
    return _save(fig, path)


# ----------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 background:#f4f5f7;color:#1d2330;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:24px 28px 40px}
header{border-bottom:3px solid #2f6db5;margin-bottom:20px;padding-bottom:10px}
h1{font-size:1.7em;margin:0 0 4px}
h2{font-size:1.15em;margin:26px 0 10px;color:#2f3b52}
.sub{font-size:1.05em;color:#3b4252;margin:0 0 4px}
.meta{font-size:.85em;color:#6b7280}
table{border-collapse:collapse;background:#fff;font-size:.92em;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:5px 14px;border-bottom:1px solid #e3e6eb;text-align:left}
th{background:#e9eef6}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,Menlo,Consolas,monospace}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
.metrics{display:flex;flex-wrap:wrap;gap:12px 24px;align-items:flex-start}
.metrics table{flex:1 1 360px;max-width:560px}
.metrics th:last-child,.metrics td:last-child{text-align:right}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:18px;align-items:start}
figure{margin:0;background:#fff;padding:10px;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
figure.wide{grid-column:1/-1}
figure img{display:block;width:100%;height:auto;max-height:640px;object-fit:contain}
figure.wide img{max-height:900px}
figcaption{font-size:.9em;color:#374151;text-align:center;margin-top:6px}
.tables table{margin-bottom:16px}
ul{padding-left:22px}
"""


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{name}/"))
        else:
            out.append((name, value))
    return out


def _fmt(value: Any) -> str:
    """Floats to 4 significant digits (whole ones without a fraction); anything else via str()."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."  # a stray array must not flood the table


def _cell(value: Any) -> str:
    is_num = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
    return f"<td{' class=num' if is_num else ''}>{html.escape(_fmt(value))}</td>"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> str:
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    parts += ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows]
    parts.append("</table>")
    return "\n".join(parts)


def _figure_src(path: str | Path, out_dir: Path) -> tuple[str, bool]:
    """A figure's URL relative to the report folder (so the folder can be moved as a whole), and
    whether the PNG is wide or large enough (a contact sheet, say) to deserve a whole grid row."""
    p = Path(path)
    if not p.is_absolute():
        # a bare name like "roc.png" means a file in the report folder, else it is relative to cwd
        p = out_dir / p if (out_dir / p).exists() else p.resolve()
    src = quote(Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix())
    try:
        with open(p, "rb") as f:
            head = f.read(24)
    except OSError:
        return src, False
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return src, head[:8] == b"\x89PNG\r\n\x1a\n" and (width > 900 or width > 1.6 * height)


def _version() -> str:
    try:
        return importlib.metadata.version("facevox")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def write_html_report(
    out_dir: str | Path,
    title: str,
    metrics: Mapping[str, Any] | None = None,
    figures: Sequence[tuple[str, str | Path]] = (),
    tables: Sequence[Table] = (),
    notes: Sequence[str] = (),
    subtitle: str | None = None,
) -> Path:
    """Write ``out_dir/report.html``: header, metrics, figure grid, tables and notes.

    The page has no scripts and no external resources; figures are linked by paths relative to
    ``out_dir``. ``figures`` is a sequence of ``(caption, path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    body = [f"<header><h1>{esc(title)}</h1>"]
    if subtitle:
        body.append(f'<p class="sub">{esc(subtitle)}</p>')
    body.append(f'<p class="meta">generated {esc(stamp)} &middot; facevox {esc(_version())}</p></header>')
    if metrics:
        rows = _flatten(metrics)
        # a long list reads better as two side-by-side tables than as one tall one
        half = (len(rows) + 1) // 2 if len(rows) > 8 else len(rows)
        body += [
            '<h2>Metrics</h2><div class="metrics">',
            *(_table(("metric", "value"), rows[i : i + half]) for i in range(0, len(rows), half)),
            "</div>",
        ]
    if notes:  # before the figures: notes say what the run was
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(str(n))}</li>" for n in notes) + "</ul>")
    if figures:
        body.append('<h2>Figures</h2><div class="grid">')
        for caption, path in figures:
            src, wide = _figure_src(path, out_dir)
            cls = ' class="wide"' if wide else ""
            body.append(
                f'<figure{cls}><img src="{esc(src)}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        body.append("</div>")
    if tables:
        body.append('<h2>Tables</h2><div class="tables">')
        body += [_table(t.header, t.rows, t.caption) for t in tables]
        body.append("</div>")
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body>\n</html>\n"
    )
    return atomic_write_text(out_dir / "report.html", page)


# ----------------------------------------------------------------------------- standard reports


def _with_tables(result: Mapping[str, Any], tables: Sequence[Table], notes: Sequence[str]) -> dict[str, Any]:
    """``result`` plus its report's ``tables`` (:func:`tables_json`) and ``notes``: what metrics.json holds."""
    for key in (TABLES_KEY, NOTES_KEY):
        if key in result:
            raise FacevoxError(f"metric name '{key}' is reserved for the report's {key}")
    return {**result, TABLES_KEY: tables_json(tables), NOTES_KEY: [str(n) for n in notes]}


def _write_metrics_and_report(out: Path, doc: Mapping[str, Any], title: str, figures: Sequence[tuple[str, Path]],
                              subtitle: str) -> None:
    """metrics.json (``doc`` from :func:`_with_tables`), then report.html drawn from what that file holds,
    read back: every figure the page shows is in the JSON, as the JSON has it (NaN and inf: null)."""
    atomic_write_json(out / "metrics.json", doc)
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    shown_tables = [Table(k, v["columns"], v["rows"]) for k, v in saved.pop(TABLES_KEY).items()]
    shown_notes = saved.pop(NOTES_KEY)
    write_html_report(out, title, saved, figures, tables=shown_tables, notes=shown_notes, subtitle=subtitle)


def verification_report(
    scores: ArrayLike,
    labels: ArrayLike,
    out_dir: str | Path,
    title: str,
    extra_metrics: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    tables: Sequence[Table] = (),
) -> dict[str, Any]:
    """Standard verification output: metrics.json, roc.png, det.png, scores.png and report.html.

    ``scores`` are trial scores (higher means "same identity"), ``labels`` 1 for target trials.
    Returns :func:`facevox.metrics.verification_metrics` merged with ``extra_metrics``, plus ``tables``
    (:func:`tables_json`) and ``notes``: all of it is in metrics.json, and the page shows nothing else.
    ``out_dir`` is written as one unit and replaced as a whole (:func:`facevox.outdir.output_dir`);
    to add files of your own, write them and call this inside ``with output_dir(out_dir) as out:``
    with ``out``.
    """
    from facevox import metrics as M

    s, y = _binary(scores, labels)
    if y.all() or not y.any():
        raise FacevoxError("verification needs both target and non-target trials")
    result: dict[str, Any] = dict(M.verification_metrics(s, y))
    result.update(extra_metrics or {})
    doc = _with_tables(result, tables, notes)
    with output_dir(out_dir, "verification report") as out:
        fpr, tpr, _ = M.roc_points(s, y)
        dfpr, fnr, _ = M.det_points(s, y)
        plot_roc({"system": (fpr, tpr)}, out / "roc.png")
        plot_det({"system": (dfpr, fnr)}, out / "det.png")
        plot_score_histogram(s, y, out / "scores.png", threshold=float(result["eer_threshold"]))
        thr = float(result["eer_threshold"])
        figures = [
            (f"DET curve (EER {100 * float(result['eer']):.2f}%)", out / "det.png"),
            ("ROC curve", out / "roc.png"),
            (f"Score distributions; dashed: EER threshold {thr:.4g}", out / "scores.png"),
        ]
        subtitle = f"{int(y.sum())} target and {int((~y).sum())} non-target trials"
        _write_metrics_and_report(out, doc, title, figures, subtitle)
    return doc


def classification_report(
    probs: ArrayLike,
    labels: ArrayLike,
    out_dir: str | Path,
    title: str,
    class_names: Sequence[str] = ("real", "fake"),
    threshold: float = 0.5,
    extra_metrics: Mapping[str, Any] | None = None,
    extra_figures: Sequence[tuple[str, str | Path]] = (),
    tables: Sequence[Table] = (),
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Standard output of a binary classifier; ``probs`` is P(class 1), i.e. P(``class_names[1]``).

    Writes metrics.json, roc.png, confusion.png, reliability.png, scores.png and report.html and
    returns the metrics, with ``tables`` (:func:`tables_json`) and ``notes`` as in metrics.json.
    ``confusion`` is nested as ``{true class: {predicted class: count}}``, predicting class 1 when
    ``prob >= threshold``. ``out_dir`` is written as one unit and replaced as a whole
    (:func:`facevox.outdir.output_dir`): draw ``extra_figures`` inside
    ``with output_dir(out_dir) as out:`` into ``out`` and pass ``out`` here.
    """
    from facevox import metrics as M

    p, y = _binary(probs, labels)
    if len(class_names) != 2:
        raise FacevoxError(f"expected 2 class names, got {len(class_names)}")
    if y.all() or not y.any():
        raise FacevoxError("the labels contain only one class")
    pred = p >= threshold
    cm = np.array([[np.sum(~y & ~pred), np.sum(~y & pred)], [np.sum(y & ~pred), np.sum(y & pred)]])
    best_acc, best_thr = M.best_accuracy(p, y)
    result: dict[str, Any] = {
        "accuracy": float(M.accuracy_at(p, y, threshold)),
        "threshold": float(threshold),
        "best_accuracy": float(best_acc),
        "best_threshold": float(best_thr),
        "average_precision": float(M.average_precision(p, y)),
        "roc_auc": float(M.roc_auc(p, y)),
        "ece": float(M.expected_calibration_error(p, y)),
        f"n_{class_names[0]}": int((~y).sum()),
        f"n_{class_names[1]}": int(y.sum()),
        "confusion": {
            str(t): {str(c): int(cm[i, j]) for j, c in enumerate(class_names)} for i, t in enumerate(class_names)
        },
    }
    result.update(extra_metrics or {})
    doc = _with_tables(result, tables, notes)
    with output_dir(out_dir, "classification report") as out:
        fpr, tpr, _ = M.roc_points(p, y)
        plot_roc({"classifier": (fpr, tpr)}, out / "roc.png")
        plot_confusion(cm, class_names, out / "confusion.png")
        plot_reliability(p, y, out / "reliability.png")
        plot_score_histogram(
            p,
            y,
            out / "scores.png",
            threshold=threshold,
            names=tuple(class_names),
            xlabel=f"Predicted P({class_names[1]})",
        )
        figures = [
            (f"Confusion matrix at threshold {threshold:g}", out / "confusion.png"),
            ("ROC curve", out / "roc.png"),
            ("Reliability diagram", out / "reliability.png"),
            (f"Predicted P({class_names[1]}) by true class", out / "scores.png"),
            *extra_figures,
        ]
        subtitle = f"{int((~y).sum())} {class_names[0]} and {int(y.sum())} {class_names[1]} samples"
        _write_metrics_and_report(out, doc, title, figures, subtitle)
    return doc
