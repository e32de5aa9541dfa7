"""What a model folder's task is, and what each task's commands read from its ``extra.json``.

A folder records its task in ``model.yaml`` (one of :data:`TASKS`); folders written before that
are recognised by :func:`infer_task`. :data:`EXTRA_SCHEMAS` lists, per task, the entries of
``extra.json`` that its commands read and what type each must have; :func:`check_fields` turns
the first wrong one into a one-line error naming the file and the key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facevox.errors import FacevoxError

TASKS = ("speaker", "fakeface", "face", "invert", "vocoder", "voice-detector", "audio-gan")


def task_of(text: str) -> str | None:
    """The task id (one of :data:`TASKS`) that a model card's task text names, or None.

    ``"speaker verification (embedding model)"`` -> ``"speaker"``, ``"GAN-generated face
    detection ..."`` -> ``"fakeface"``, ``"face verification ..."`` -> ``"face"``, ``"GAN
    inversion ..."`` -> ``"invert"``; a task id itself maps to itself.
    """
    t = " ".join(str(text).lower().split())
    if t in TASKS:
        return t
    for prefix, task in (("speaker", "speaker"), ("gan-generated face", "fakeface"), ("fakeface", "fakeface"),
                         ("gan inversion", "invert"), ("invert", "invert"), ("face", "face")):
        if t.startswith(prefix):
            return task
    return None


@dataclass(frozen=True)
class Field:
    """One entry of a model folder's JSON/YAML: what it must be, and whether a consumer needs it."""

    check: Callable[[Any], bool]
    expect: str  # what it must be, for the message: "a finite number"
    required: bool = False

    def needed(self) -> Field:
        return Field(self.check, self.expect, True)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(n: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and len(v) == n and all(_is_num(x) for x in v)


NUMBER = Field(_is_num, "a finite number")
COUNT = Field(lambda v: _is_int(v) and v >= 0, "a non-negative integer")
SIZE = Field(lambda v: _is_int(v) and v > 0, "a positive integer")
SIZE2 = Field(lambda v: isinstance(v, list) and len(v) == 2 and all(SIZE.check(x) for x in v),
              "a list of 2 positive integers")
BOOL = Field(lambda v: isinstance(v, bool), "true or false")
TEXT = Field(lambda v: isinstance(v, str), "a string")
MAPPING = Field(lambda v: isinstance(v, dict), "an object (a mapping of keys to values)")
BOX = Field(_numbers(4), "a list of 4 numbers")


def one_of(*values: str) -> Field:
    return Field(lambda v: v in values, " or ".join(repr(v) for v in values))


def or_null(f: Field) -> Field:
    return Field(lambda v: v is None or f.check(v), f"{f.expect} or null", f.required)


CALIBRATION = {  # facevox.verification.calibration.Calibration.to_dict()
    "calibration": MAPPING,
    **{f"calibration.{k}": NUMBER.needed() for k in ("a", "b", "threshold", "target_far")},
    **{f"calibration.{k}": COUNT.needed() for k in ("n_target", "n_nontarget")},
}

# What each task's commands read from extra.json (dotted keys lie inside an object; a required
# one is required when its object is there). Keys not listed are not read, so not checked.
EXTRA_SCHEMAS: dict[str, dict[str, Field]] = {
    "speaker": {
        "kind": one_of("embedding", "pair", "siamese"),
        "sample_rate": Field(lambda v: v == 16000, "16000 (facevox speaker models read 16 kHz audio)"),
        "crop_samples": SIZE,
        "scoring": MAPPING,
        "scoring.window_seconds": Field(lambda v: _is_num(v) and v >= 0, "a number >= 0"),
        "scoring.max_seconds": Field(lambda v: _is_num(v) and v > 0, "a number > 0"),
        **CALIBRATION,
    },
    "fakeface": {
        "load_size": SIZE,
        "threshold": Field(lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
        "mask": or_null(BOX),
        "face_probe": MAPPING,
        "face_probe.coef": Field(lambda v: isinstance(v, list) and len(v) > 0 and all(_is_num(x) for x in v),
                                 "a list of numbers", True),
        "face_probe.box": BOX.needed(),
        **{f"face_probe.{k}": NUMBER.needed() for k in ("intercept", "cnn_scale", "probe_scale", "cnn_weight")},
        **{f"face_probe.{k}": NUMBER for k in ("strength", "calib_scale", "calib_bias")},
    },
    "face": {
        "input_size": SIZE2,
        "flip": BOOL,
        "loss": TEXT,
        "similarity": one_of("cosine", "euclidean"),
        "threshold": or_null(NUMBER),
        **CALIBRATION,
    },
    "invert": {
        "nz": SIZE.needed(),
        "input_size": SIZE2.needed(),
        "generator": MAPPING.needed(),
        "generator.source": TEXT.needed(),
        "generator.weights": or_null(TEXT),
        "generator.nz": or_null(SIZE),
        "generator.output_range": Field(_numbers(2), "a list of 2 numbers"),
        "features": MAPPING,
        "features.network": TEXT,
        "features.stages": Field(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                                 "a list of strings"),
        "features.input_size": Field(lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    },
    "vocoder": {
        "mel": MAPPING.needed(),
        **{f"mel.{k}": SIZE.needed() for k in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels")},
        **{f"mel.{k}": NUMBER.needed() for k in ("f_min", "f_max")},
    },
    "voice-detector": {
        **{k: SIZE.needed() for k in ("n_fft", "win_length", "hop_length")},
        "window_seconds": Field(lambda v: _is_num(v) and v > 0, "a number > 0", True),
        "sample_rate": Field(lambda v: v == 16000, "16000 (the detector reads 16 kHz audio)"),
        "min_seconds": Field(lambda v: _is_num(v) and v > 0, "a number > 0"),
        "threshold": Field(lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    },
    "audio-gan": {
        "nz": SIZE.needed(),
        "samples": SIZE,
        "sample_rate": Field(lambda v: v == 16000, "16000 (facevox's audio GANs make 16 kHz audio)"),
        "output_range": Field(_numbers(2), "a list of 2 numbers"),
    },
}
CONFIG_SCHEMAS: dict[str, dict[str, Field]] = {  # what commands read from config.yaml
    "speaker": {"pair": MAPPING, "pair.crop_samples": SIZE},
}
_EXTRA_KEYS = (("speaker", ("kind", "calibration", "scoring")), ("fakeface", ("face_probe", "load_size", "classes")),
               ("invert", ("nz", "generator")))


def check_fields(doc: Mapping[str, Any], schema: Mapping[str, Field], where: str | Path) -> None:
    """Raise a one-line :class:`FacevoxError` naming ``where`` and the key for the first entry of
    ``doc`` that ``schema`` says is missing or of the wrong type."""
    for key, f in schema.items():
        *parents, last = key.split(".")
        node: Any = doc
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # its object is absent (or already reported as the wrong type)
        if last not in node:
            if f.required:
                raise FacevoxError(f"missing key '{key}' ({f.expect})", where)
            continue
        if not f.check(node[last]):
            raise FacevoxError(f"key '{key}' must be {f.expect}, got {shown_value(node[last])}", where)


def shown_value(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def infer_task(spec: Mapping[str, Any], extra: Mapping[str, Any], card: str) -> str | None:
    """The task of a folder written before model.yaml recorded it: extra.json's ``task``, the
    card's Task line, the model's name, or the extra.json keys only one task writes."""
    if extra.get("task") in TASKS:
        return extra["task"]
    line = re.search(r"^- \*\*Task:\*\* (.+)$", card, re.MULTILINE)
    if line and task_of(line.group(1)):
        return task_of(line.group(1))
    if str(spec.get("name", "")).startswith("speaker_"):
        return "speaker"
    for task, keys in _EXTRA_KEYS:
        if any(k in extra for k in keys):
            return task
    if "input_size" in extra and ("flip" in extra or "loss" in extra):
        return "face"
    return None
