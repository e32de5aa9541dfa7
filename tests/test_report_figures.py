"""Every figure a report shows is in its metrics.json: each cell of each table of report.html (the
metric/value summary and the extra tables), each note, and each number of the subtitle and figure
captions, compared after the same formatting the page uses (:func:`facevox.report._fmt`)."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facevox import report
from facevox.errors import FacevoxError
from facevox.report import Table

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


class _Page(HTMLParser):
    """Tables (caption, rows of cell texts), notes, subtitle and figure captions of a report page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.captions: list[str] = []  # the subtitle and the figure captions
        self._text: list[str] | None = None
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append({"caption": None, "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th", "caption", "li", "figcaption") or (tag == "p" and ("class", "sub") in attrs):
            self._in, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._in or self._text is None:
            return
        text = "".join(self._text)
        if tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(text)
        elif tag == "caption":
            self.tables[-1]["caption"] = text
        elif tag == "li":
            self.notes.append(text)
        else:
            self.captions.append(text)
        self._in = self._text = None


def _shown_forms(value: Any) -> set[str]:
    """The ways a report writes a number in running text: as in its tables, :g, :.4g, and percent :.2f."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return set()
    forms = {report._fmt(value), f"{value:g}", f"{value:.4g}"}
    if isinstance(value, float) and math.isfinite(value):
        forms.add(f"{100 * value:.2f}")
    return forms


def figure_problems(out: Path) -> list[str]:
    """What report.html in ``out`` shows that its metrics.json does not hold (empty: nothing)."""
    page = _Page((out / "report.html").read_text(encoding="utf-8"))
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    tables, notes = doc.get("tables", {}), doc.get("notes", [])
    flat = dict(report._flatten({k: v for k, v in doc.items() if k not in ("tables", "notes")}))
    problems = []
    for t in page.tables:
        header, *rows = t["rows"]
        if t["caption"] is None:  # the summary: one row per metrics key
            assert header == ["metric", "value"], header
            for name, value in rows:
                if name not in flat:
                    problems.append(f"metric {name!r} is not in metrics.json")
                elif report._fmt(flat[name]) != value:
                    problems.append(f"metric {name!r}: page {value!r}, metrics.json {flat[name]!r}")
            continue
        saved = tables.get(t["caption"])
        if saved is None:
            problems.append(f"table {t['caption']!r} is not in metrics.json")
            continue
        if saved["columns"] != header:
            problems.append(f"table {t['caption']!r}: columns {header} on the page, {saved['columns']} saved")
        if len(saved["rows"]) != len(rows):
            problems.append(f"table {t['caption']!r}: {len(rows)} rows on the page, {len(saved['rows'])} saved")
        for i, (cells, values) in enumerate(zip(rows, saved["rows"], strict=False)):
            if cells != [report._fmt(v) for v in values]:
                problems.append(f"table {t['caption']!r} row {i}: page {cells}, metrics.json {values}")
    problems += [f"note {n!r} is not in metrics.json" for n in page.notes if n not in notes]
    shown = set().union(*(_shown_forms(v) for v in flat.values()))
    for text in page.captions:
        problems += [f"{tok!r} in {text!r} is no metric" for tok in _NUMBER.findall(text) if tok not in shown]
    return problems


def _trials(n_target: int = 120, n_nontarget: int = 480, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(2, 1, n_target), rng.normal(0, 1, n_nontarget)]
    return scores, np.r_[np.ones(n_target, dtype=int), np.zeros(n_nontarget, dtype=int)]


def _edit_metrics(out: Path, change: Any) -> None:
    doc = json.loads((out / "metrics.json").read_text())
    change(doc)
    (out / "metrics.json").write_text(json.dumps(doc))


def test_verification_report_tables_are_in_metrics(tmp_path: Path) -> None:
    scores, labels = _trials()
    folds = np.arange(scores.size) % 5
    accs = [float(np.mean((scores[folds == f] >= 1.0) == labels[folds == f])) for f in range(5)]
    table = Table("Accuracy per fold", ("fold", "accuracy", "threshold"),
                  [(f + 1, np.float64(a), 1.0) for f, a in enumerate(accs)])
    out = tmp_path / "ver"
    result = report.verification_report(scores, labels, out, "Per-fold", tables=[table],
                                        extra_metrics={"model": {"dim": 8}, "cllr": math.nan},
                                        notes=["5 folds of 120 pairs"])
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["tables"]["Accuracy per fold"] == {"columns": ["fold", "accuracy", "threshold"],
                                                   "rows": [[f + 1, a, 1.0] for f, a in enumerate(accs)]}
    assert saved["notes"] == ["5 folds of 120 pairs"] and saved["cllr"] is None
    assert result["tables"] == saved["tables"] and result["notes"] == saved["notes"]
    assert figure_problems(out) == []
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"<td class=num>{report._fmt(accs[2])}</td>" in page and "tables/" not in page


def test_checker_fails_on_a_figure_missing_from_metrics(tmp_path: Path) -> None:
    scores, labels = _trials()
    table = Table("Accuracy per fold", ("fold", "accuracy"), [(1, 0.8483), (2, 0.8125)])
    out = tmp_path / "ver"
    report.verification_report(scores, labels, out, "Per-fold", tables=[table], notes=["n 600"])
    assert figure_problems(out) == []
    good = (out / "metrics.json").read_text()

    def restore() -> None:
        (out / "metrics.json").write_text(good)

    _edit_metrics(out, lambda d: d["tables"]["Accuracy per fold"]["rows"][1].pop())  # the 0.8125 removed
    assert any("Accuracy per fold" in p and "0.8125" in p for p in figure_problems(out))
    restore()
    _edit_metrics(out, lambda d: d["tables"]["Accuracy per fold"]["rows"][0].__setitem__(1, 0.8484))
    assert any("row 0" in p for p in figure_problems(out))
    restore()
    _edit_metrics(out, lambda d: d.pop("tables"))
    assert figure_problems(out) == ["table 'Accuracy per fold' is not in metrics.json"]
    restore()
    _edit_metrics(out, lambda d: d.pop("min_dcf_0.01"))
    assert figure_problems(out) == ["metric 'min_dcf_0.01' is not in metrics.json"]
    restore()
    _edit_metrics(out, lambda d: d.__setitem__("eer", d["eer"] + 0.01))  # the summary and the DET caption
    problems = figure_problems(out)
    assert any(p.startswith("metric 'eer'") for p in problems) and any("DET curve" in p for p in problems)
    restore()
    _edit_metrics(out, lambda d: d.pop("notes"))
    assert figure_problems(out) == ["note 'n 600' is not in metrics.json"]


def test_face_per_fold_and_identification_tables(tmp_path: Path) -> None:
    from facevox.tasks.face.evaluate import verification_outputs

    scores, labels = _trials()
    folds = np.arange(scores.size) % 10
    ident = Table("Identification", ("measure", "value"), [("gallery identities", 7), ("rank-1 (closed set)", 0.75)])
    m = verification_outputs(scores, labels, folds, tmp_path / "face", None, ["scorer: test"], tables=[ident])
    saved = json.loads((tmp_path / "face" / "metrics.json").read_text())
    (caption,) = [c for c in saved["tables"] if c.startswith("Accuracy per fold")]
    rows = saved["tables"][caption]["rows"]
    assert [r[0] for r in rows] == list(range(1, 11))
    assert np.mean([r[1] for r in rows]) == pytest.approx(saved["kfold_accuracy"])
    assert saved["tables"]["Identification"]["rows"][1] == ["rank-1 (closed set)", 0.75]
    assert m["tables"] == saved["tables"]
    assert figure_problems(tmp_path / "face") == []


def test_classification_report_group_and_robustness_tables(tmp_path: Path) -> None:
    from facevox.audit import group_metrics
    from facevox.tasks.fakeface.evaluate import group_tables

    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.4).astype(int)
    probs = 1 / (1 + np.exp(-(2.5 * labels - 1.0 + rng.normal(0, 1, 300))))
    skin = ["dark" if i % 3 else "light" for i in range(300)]
    audit = group_metrics(probs, labels, {"skin": skin, "age": ["old"] * 297 + ["young"] * 3})  # "young" < 5
    robust = Table("Robustness", ("perturbation", "AP", "ROC-AUC", "accuracy"),
                   [("clean", 0.91, 0.93, 0.87), ("jpeg", 0.8, math.nan, np.float32(0.75))])
    out = tmp_path / "cls"
    result = report.classification_report(probs, labels, out, "Detector", extra_metrics={"groups": audit},
                                          tables=[*group_tables(audit), robust, robust], notes=["threshold 0.5"])
    saved = json.loads((out / "metrics.json").read_text())
    assert {"Robustness", "Robustness (2)"} <= set(saved["tables"]) and len(saved["tables"]) == 4
    assert saved["tables"]["Robustness"]["rows"][1] == ["jpeg", 0.8, None, 0.75]
    assert result["tables"]["Robustness"]["rows"][1][1] == 0.8
    assert figure_problems(out) == []


def test_eval_scores_command(tmp_path: Path) -> None:
    from facevox.cli import main

    scores, labels = _trials(40, 160, seed=1)
    (tmp_path / "s.txt").write_text("".join(f"{s:.5f} {'target' if y else 'nontarget'}\n"
                                            for s, y in zip(scores, labels, strict=True)))
    assert main(["eval-scores", str(tmp_path / "s.txt"), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["tables"] == {}
    assert figure_problems(tmp_path / "out") == []


@pytest.mark.parametrize("key", ["tables", "notes"])
def test_reserved_metric_names(tmp_path: Path, key: str) -> None:
    scores, labels = _trials()
    with pytest.raises(FacevoxError, match="reserved"):
        report.verification_report(scores, labels, tmp_path / "r", "x", extra_metrics={key: 1})
    assert not (tmp_path / "r").exists()
