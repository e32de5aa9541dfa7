"""Tests for facevox.report: every plot writes a real PNG, the HTML page is self-contained and
escaped, and the standard reports write all their files with metrics that match facevox.metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevox import report
from facevox.errors import FacevoxError
from facevox.outdir import MARKER, output_dir

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot.sh"


@pytest.fixture
def trials() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic verification scores: 200 targets N(2, 1), 1000 non-targets N(0, 1)."""
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(2, 1, 200), rng.normal(0, 1, 1000)]
    return scores, np.r_[np.ones(200, dtype=int), np.zeros(1000, dtype=int)]


def _roc(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a tiny independent ROC, so the plot tests do not depend on facevox.metrics
    order = np.argsort(-scores)
    y = labels[order]
    tpr = np.r_[0, np.cumsum(y) / y.sum()]
    fpr = np.r_[0, np.cumsum(1 - y) / (1 - y).sum()]
    return fpr, tpr


def _check_png(path: Path, min_w: int = 200, min_h: int = 150) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width >= min_w and img.height >= min_h
        img.verify()
    # atomic writes leave no temporary files behind
    assert not list(path.parent.glob(".*.tmp"))


def test_plot_roc_and_det(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    scores, labels = trials
    fpr, tpr = _roc(scores, labels)
    fpr2, tpr2 = _roc(scores * 0.3, labels)
    out = report.plot_roc({"a": (fpr, tpr), "b": (fpr2, tpr2)}, tmp_path / "roc.png")
    assert out == tmp_path / "roc.png"
    _check_png(out)
    _check_png(report.plot_det({"a": (fpr, 1 - tpr), "b": (fpr2, 1 - tpr2)}, tmp_path / "det.png"))
    with pytest.raises(FacevoxError):
        report.plot_roc({}, tmp_path / "empty.png")


def test_plot_score_histogram(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    scores, labels = trials
    _check_png(report.plot_score_histogram(scores, labels, tmp_path / "h1.png", threshold=1.0))
    _check_png(report.plot_score_histogram(scores, labels, tmp_path / "h2.png", names=("neg", "pos")))
    with pytest.raises(FacevoxError):
        report.plot_score_histogram(scores, labels[:-1], tmp_path / "bad.png")


@pytest.mark.parametrize("normalise", [False, True])
def test_plot_confusion(tmp_path: Path, normalise: bool) -> None:
    m = np.array([[50, 3, 1], [4, 40, 6], [0, 2, 30]])
    _check_png(report.plot_confusion(m, ["a", "b", "c"], tmp_path / "cm.png", normalise=normalise))
    with pytest.raises(FacevoxError):
        report.plot_confusion(m, ["a", "b"], tmp_path / "bad.png")


def test_plot_reliability(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    probs = rng.random(500)
    labels = (rng.random(500) < probs).astype(int)
    _check_png(report.plot_reliability(probs, labels, tmp_path / "rel.png", n_bins=10))


def test_plot_training_curves(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    lines = ["step,epoch,loss,lr,val_eer,phase"]
    for step in range(1, 121):
        val = f"{0.3 / step:.4f}" if step % 40 == 0 else ""  # validation only every 40 steps
        lines.append(f"{step},{step // 60},{1 / step + 0.01 * (step % 3):.4f},{1e-3:.6f},{val},train")
    csv_path.write_text("\n".join(lines) + "\n")
    _check_png(report.plot_training_curves(csv_path, tmp_path / "all.png"))
    _check_png(report.plot_training_curves(csv_path, tmp_path / "two.png", keys=["loss", "val_eer"]))
    with pytest.raises(FacevoxError):
        report.plot_training_curves(csv_path, tmp_path / "bad.png", keys=["no_such_column"])
    with pytest.raises(FacevoxError):
        report.plot_training_curves(tmp_path / "missing.csv", tmp_path / "bad.png")


def test_plot_image_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _check_png(report.plot_image_grid(torch.rand(10, 3, 16, 16), tmp_path / "t.png", ncols=4))
    _check_png(report.plot_image_grid(torch.rand(3, 1, 16, 16), tmp_path / "g.png"), min_h=50)
    arrays = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), rng.random((20, 24))]
    _check_png(report.plot_image_grid(arrays, tmp_path / "a.png", titles=["rgb", "gray"]), min_h=50)
    with pytest.raises(FacevoxError):
        report.plot_image_grid(arrays, tmp_path / "bad.png", titles=["only one"])


def _img_srcs(page: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)


def test_write_html_report(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    out_dir = tmp_path / "run"
    fig_dir = out_dir / "figs"
    fpr, tpr = _roc(*trials)
    in_folder = report.plot_roc({"x": (fpr, tpr)}, fig_dir / "roc.png")
    elsewhere = report.plot_roc({"x": (fpr, tpr)}, tmp_path / "shared" / "roc 2.png")
    page_path = report.write_html_report(
        out_dir,
        title="Run <script>alert(1)</script>",
        subtitle="a & b",
        metrics={"eer": 0.0123456, "n": 42, "nested": {"inner": 2.5, "deeper": {"x": 1e-7}}},
        figures=[("ROC <in folder>", in_folder), ("ROC elsewhere", elsewhere)],
        tables=[report.Table("Per class", ["class", "acc"], [["cat<1>", 0.98765], ["dog", 1.0]])],
        notes=["note with <b>tags</b>"],
    )
    assert page_path == out_dir / "report.html"
    page = page_path.read_text(encoding="utf-8")
    # text is escaped, never interpreted
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "a &amp; b" in page and "&lt;b&gt;tags&lt;/b&gt;" in page and "cat&lt;1&gt;" in page
    # metrics: 4 significant digits, nested keys flattened with "/"
    for text in ("0.01235", ">42<", "nested/inner", "2.5", "nested/deeper/x", "1e-07", "0.9877"):
        assert text in page
    # figures are linked relative to the report folder and exist there
    srcs = _img_srcs(page)
    assert srcs == ["figs/roc.png", "../shared/roc%202.png"]
    for src in srcs:
        assert not src.startswith(("/", "file:", "http"))
        assert (out_dir / src.replace("%20", " ")).is_file()
    # self-contained: no scripts, no external stylesheets or fonts
    assert "<link" not in page and "http://" not in page and "https://" not in page


def test_html_report_folder_can_move(tmp_path: Path) -> None:
    out_dir = tmp_path / "a"
    png = report.plot_confusion(np.eye(2) * 5, ["x", "y"], out_dir / "cm.png")
    report.write_html_report(out_dir, "Movable", figures=[("cm", png)])
    moved = tmp_path / "b"
    shutil.move(out_dir, moved)
    (src,) = _img_srcs((moved / "report.html").read_text(encoding="utf-8"))
    assert (moved / src).is_file()


def test_verification_report(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    from facevox import metrics

    scores, labels = trials
    out_dir = tmp_path / "new" / "verification"  # created on demand
    result = report.verification_report(
        scores, labels, out_dir, "Speaker test", extra_metrics={"model": {"dim": 192}}, notes=["synthetic"]
    )
    for name in ("metrics.json", "roc.png", "det.png", "scores.png", "report.html"):
        assert (out_dir / name).is_file(), name
    for name in ("roc.png", "det.png", "scores.png"):
        _check_png(out_dir / name)
    expected = metrics.verification_metrics(scores, labels)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert result["model"] == {"dim": 192}
    assert 0.1 < result["eer"] < 0.25  # d' = 2 gives an EER near 16 %
    saved = json.loads((out_dir / "metrics.json").read_text())
    assert saved["eer"] == pytest.approx(result["eer"]) and saved["model"] == {"dim": 192}
    page = (out_dir / "report.html").read_text(encoding="utf-8")
    assert "Speaker test" in page and "synthetic" in page and f"{result['eer']:.4g}" in page
    assert sorted(_img_srcs(page)) == ["det.png", "roc.png", "scores.png"]
    with pytest.raises(FacevoxError):
        report.verification_report(scores, np.ones_like(labels), tmp_path / "one", "one class")


def test_classification_report(tmp_path: Path) -> None:
    from facevox import metrics

    rng = np.random.default_rng(3)
    labels = (rng.random(600) < 0.3).astype(int)
    probs = 1 / (1 + np.exp(-(2.5 * labels - 1.2 + rng.normal(0, 1, 600))))
    table = report.Table("Per generator", ["generator", "acc"], [["stylegan", 0.9]])
    with output_dir(tmp_path / "out") as staged:  # a figure of the caller's own, in the same unit
        extra_png = report.plot_image_grid(torch.rand(4, 3, 8, 8), staged / "samples.png")
        result = report.classification_report(
            probs,
            labels,
            staged,
            "Detector",
            threshold=0.5,
            extra_metrics={"epochs": 3},
            tables=[table],
            extra_figures=[("Samples", extra_png)],
        )
    for name in ("metrics.json", "roc.png", "confusion.png", "reliability.png", "scores.png", "report.html",
                 "samples.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert result["accuracy"] == pytest.approx(metrics.accuracy_at(probs, labels, 0.5))
    best_acc, best_thr = metrics.best_accuracy(probs, labels)
    assert result["best_accuracy"] == pytest.approx(best_acc)
    assert result["best_threshold"] == pytest.approx(best_thr)
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc(probs, labels))
    assert result["average_precision"] == pytest.approx(metrics.average_precision(probs, labels))
    assert result["ece"] == pytest.approx(metrics.expected_calibration_error(probs, labels))
    assert result["epochs"] == 3
    cm = result["confusion"]
    assert sum(v for row in cm.values() for v in row.values()) == labels.size
    assert cm["fake"]["fake"] + cm["fake"]["real"] == labels.sum()
    assert (cm["real"]["real"] + cm["fake"]["fake"]) / labels.size == pytest.approx(result["accuracy"])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["confusion"] == cm
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "confusion/real/fake" in page and "Per generator" in page
    assert "samples.png" in _img_srcs(page)


def _chromium() -> str | None:
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs chromium")
def test_report_renders_in_chromium(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    scores, labels = trials
    report.verification_report(scores, labels, tmp_path / "run", "Rendered report")
    shot = tmp_path / "shot.png"
    env = {**os.environ, "CHROMIUM": _chromium() or ""}
    cmd = ["bash", str(SCRIPT), str(tmp_path / "run" / "report.html"), str(shot), "1280x1600"]
    subprocess.run(cmd, check=True, timeout=90, capture_output=True, env=env)
    with Image.open(shot) as img:
        assert img.size == (1280, 1600)
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 15  # a blank or failed render is (nearly) uniform
    colours, counts = np.unique(pixels.reshape(-1, 3) // 8, axis=0, return_counts=True)
    assert counts.max() / counts.sum() < 0.85 and len(colours) > 50


def test_figures_save_as_jpeg_for_a_jpg_path(tmp_path):
    from PIL import Image

    from facevox.report import plot_image_grid

    path = plot_image_grid(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "grid.jpg")
    with Image.open(path) as img:
        assert img.format == "JPEG"
    with Image.open(plot_image_grid(np.zeros((1, 8, 8, 3), np.uint8), tmp_path / "grid.png")) as img:
        assert img.format == "PNG"


# ----------------------------------------------------------------------------- faults while writing


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def test_report_is_written_as_one_unit(tmp_path: Path, trials: tuple[np.ndarray, np.ndarray]) -> None:
    scores, labels = trials
    out = tmp_path / "run"
    report.verification_report(scores, labels, out, "first")
    (out / "old-extra.png").write_bytes(b"from an earlier version")
    report.verification_report(scores + 1, labels, out, "second")
    assert sorted(_snapshot(out)) == sorted([MARKER, "metrics.json", "roc.png", "det.png", "scores.png",
                                             "report.html"])
    assert "second" in (out / "report.html").read_text() and not _temporaries(out)


def test_a_full_disk_while_reporting_keeps_the_old_report(tmp_path: Path, monkeypatch,
                                                          trials: tuple[np.ndarray, np.ndarray]) -> None:
    import errno

    scores, labels = trials
    out = tmp_path / "run"
    report.verification_report(scores, labels, out, "old report")
    before = _snapshot(out)
    real_write_text = Path.write_text

    def full_disk(self: Path, text: str, *args, **kwargs) -> int:
        if self.name.startswith(".report.html."):  # the last file of the report: everything else is written
            real_write_text(self, text[: len(text) // 2], *args, **kwargs)  # half of it reaches the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(FacevoxError) as err:
        report.verification_report(scores + 1, labels, out, "new report")
    assert str(err.value) == f"{out}: cannot write the output: No space left on device; nothing was changed"
    assert _snapshot(out) == before and not _temporaries(out)


def test_matplotlib_failing_leaves_no_half_png(tmp_path: Path, monkeypatch,
                                               trials: tuple[np.ndarray, np.ndarray]) -> None:
    from matplotlib.figure import Figure

    scores, labels = trials
    out = tmp_path / "run"
    report.verification_report(scores, labels, out, "old report")
    before = _snapshot(out)

    def broken_savefig(self: Figure, fname, *args, **kwargs) -> None:
        Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n half")  # the start of a PNG, then matplotlib fails
        raise ValueError("matplotlib failed")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    fpr, tpr = _roc(scores, labels)
    with pytest.raises(ValueError, match="matplotlib failed"):
        report.plot_roc({"x": (fpr, tpr)}, tmp_path / "alone" / "roc.png")
    assert list((tmp_path / "alone").iterdir()) == []  # neither roc.png nor its temporary
    with pytest.raises(ValueError, match="matplotlib failed"):
        report.verification_report(scores + 1, labels, out, "new report")
    assert _snapshot(out) == before and not _temporaries(out)


def test_eval_scores_full_disk_and_foreign_folder_are_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    import errno

    from facevox.cli import main

    rng = np.random.default_rng(1)
    lines = [f"{rng.normal(2 if i % 4 == 0 else 0):.4f} {int(i % 4 == 0)}" for i in range(200)]
    (tmp_path / "scores.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval"
    assert main(["eval-scores", str(tmp_path / "scores.txt"), "--out", str(out)]) == 0
    before = _snapshot(out)
    capsys.readouterr()

    def full_disk(self, fname, *args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    from matplotlib.figure import Figure

    with monkeypatch.context() as m:
        m.setattr(Figure, "savefig", full_disk)
        assert main(["eval-scores", str(tmp_path / "scores.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"facevox: error: {out}") and "No space left on device" in err[0]
    assert _snapshot(out) == before and not _temporaries(out)

    run = tmp_path / "run"  # a run folder holding a model: not an output facevox may replace
    (run / "model").mkdir(parents=True)
    (run / "model" / "model.safetensors").write_bytes(b"weights")
    assert main(["eval-scores", str(tmp_path / "scores.txt"), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not write as an output" in err[0] and str(run) in err[0]
    assert _snapshot(run) == {"model/model.safetensors": b"weights"} and not _temporaries(run)
