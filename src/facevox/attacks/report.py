"""What an attack run writes: per-example results, the summary per attack and budget, a few
examples to listen to or look at, an accuracy-vs-budget plot and the HTML report.

OUT/
    results.csv       one row per example, attack and budget: label, target, clean and adversarial
                      decision, success, perceptual measures
    summary.json      one object per attack and budget (the report's table)
    metrics.json      the summary table (and every other figure the report shows)
    accuracy.png      clean and adversarial accuracy against the budget, one curve per attack
    examples/         clean and adversarial WAV files (audio) or PNG pairs (images)
    report.html
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.outdir import output_dir
from facevox.report import Table, _figure, _save, _with_tables, _write_metrics_and_report


def summarise(rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> list[dict[str, Any]]:
    """One summary row per (attack, budget) from per-example rows: count, clean accuracy (decision ==
    label), adversarial accuracy, success rate and the mean of each perceptual measure. A budget of
    None is an attack without one (FoolHD: its perturbation is learned)."""
    groups: dict[tuple[str, float | None], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["attack"], None if r["budget"] is None else float(r["budget"])), []).append(r)
    out = []
    for (attack, budget), rs in groups.items():
        row: dict[str, Any] = {"attack": attack, "budget": budget, "n": len(rs),
                               "clean_accuracy": float(np.mean([r["clean_pred"] == r["label"] for r in rs])),
                               "adversarial_accuracy": float(np.mean([r["adv_pred"] == r["label"] for r in rs])),
                               "success_rate": float(np.mean([bool(r["success"]) for r in rs]))}
        for m in measures:
            vals = [float(r[m]) for r in rs if r.get(m) is not None and np.isfinite(float(r[m]))]
            row[m] = float(np.mean(vals)) if vals else None
        out.append(row)
    return out


def plot_accuracy_vs_budget(summary: Sequence[Mapping[str, Any]], path: str | Path, budget_label: str) -> Path:
    """Adversarial accuracy against the budget, one line per attack, with the clean accuracy dashed."""
    fig = _figure(5.0, 3.6)
    ax = fig.add_subplot()
    for attack in dict.fromkeys(r["attack"] for r in summary):
        rs = sorted((r for r in summary if r["attack"] == attack and r["budget"] is not None),
                    key=lambda r: r["budget"])
        if rs:
            ax.plot([r["budget"] for r in rs], [r["adversarial_accuracy"] for r in rs], marker="o", label=attack)
        for r in summary:  # attacks without a budget: a level line
            if r["attack"] == attack and r["budget"] is None:
                ax.axhline(r["adversarial_accuracy"], linestyle=":", color="black", label=f"{attack} (no budget)")
    clean = float(np.mean([r["clean_accuracy"] for r in summary]))
    ax.axhline(clean, color="grey", linestyle="--", label="clean")
    ax.set(xlabel=budget_label, ylabel="accuracy", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_attack_report(out: str | Path, title: str, rows: Sequence[Mapping[str, Any]], measures: Sequence[str],
                        budget_label: str, notes: Sequence[str] = (),
                        examples: Sequence[tuple[str, np.ndarray, np.ndarray]] = (), modality: str = "audio",
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write OUT (see the module docstring) as one unit; ``examples`` are ``(name, clean, adversarial)``
    waves (T,) at 16 kHz or images (H, W, 3) in [0, 1]. Returns what metrics.json holds."""
    summary = summarise(rows, measures)
    header = ("attack", budget_label, "n", "clean acc.", "adv. acc.", "success", *measures)
    table = Table("Attack success and perceptual cost per budget", header,
                  [(r["attack"], r["budget"], r["n"], r["clean_accuracy"], r["adversarial_accuracy"],
                    r["success_rate"], *(r[m] for m in measures)) for r in summary])
    doc = _with_tables({"n_examples": len({r["example"] for r in rows}), **(extra or {})}, [table], notes)
    with output_dir(out, "attack") as staged:
        atomic_write_text(staged / "results.csv", _csv(rows))
        atomic_write_json(staged / "summary.json", summary)
        plot_accuracy_vs_budget(summary, staged / "accuracy.png", budget_label)
        figures = [("Accuracy against the attack budget (dashed: clean)", staged / "accuracy.png")]
        if examples:
            (staged / "examples").mkdir()
            for name, clean, adv in examples:
                _save_example(staged / "examples", name, clean, adv, modality)
            if modality == "image":
                from facevox.report import plot_image_grid

                grid = [im for _, c, a in examples for im in (c, a)]
                titles = [f"{n} {k}" for n, _, _ in examples for k in ("clean", "adversarial")]
                plot_image_grid(grid, staged / "examples.png", titles=titles, ncols=2)
                figures.append(("Examples: clean and adversarial", staged / "examples.png"))
        _write_metrics_and_report(staged, doc, title, figures, f"{doc['n_examples']} examples")
    return doc


def _save_example(folder: Path, name: str, clean: np.ndarray, adv: np.ndarray, modality: str) -> None:
    if modality == "audio":
        from facevox.audio.io import save_wav

        save_wav(folder / f"{name}_clean.wav", np.asarray(clean, np.float32))
        save_wav(folder / f"{name}_adversarial.wav", np.asarray(adv, np.float32))
        return
    from PIL import Image

    for kind, im in (("clean", clean), ("adversarial", adv)):
        Image.fromarray((np.clip(im, 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{name}_{kind}.png")


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """The report's summary table as printed lines: attack, budget, success, accuracy, measures."""
    table = next(iter(doc["tables"].values()))
    lines = []
    for row in table["rows"]:
        cells = dict(zip(table["columns"], row, strict=True))
        measures = "  ".join(f"{k} {v:.3g}" for k, v in list(cells.items())[6:] if isinstance(v, float))
        budget = "-" if row[1] is None else f"{row[1]:.4g}"
        lines.append(f"{cells['attack']:<7} budget {budget:<7} success {100 * cells['success']:5.1f}%  accuracy "
                     f"{100 * cells['clean acc.']:.1f}% -> {100 * cells['adv. acc.']:.1f}%  {measures}")
    return lines
