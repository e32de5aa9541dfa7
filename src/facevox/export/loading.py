"""``facevox.load(FILE)`` for an exported ONNX model: the same inference object as for its model folder
(:class:`~facevox.api.SpeakerVerifier`, :class:`~facevox.api.FaceVerifier`,
:class:`~facevox.api.FakeFaceDetector`), with the network run by onnxruntime on the CPU."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from facevox.checkpoint import ModelFolder
from facevox.errors import FacevoxError
from facevox.textfile import read_text, shown_name


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar ``PATH.json`` that ``facevox export`` wrote next to an exported file."""
    side = Path(f"{path}.json")
    if not side.is_file():
        raise FacevoxError(f"not a facevox model folder, and no {side.name} next to it (files made by "
                           "'facevox export' have one)", shown_name(path))
    try:
        doc = json.loads(read_text(side))
    except json.JSONDecodeError as err:
        raise FacevoxError(f"not valid JSON ({err.msg} at line {err.lineno})", shown_name(side)) from None
    if not isinstance(doc, dict) or doc.get("format") not in ("onnx", "torchscript") or \
            doc.get("task") not in ("speaker", "face", "fakeface"):
        raise FacevoxError("not a facevox export sidecar (needs format onnx/torchscript and a task)", shown_name(side))
    return doc


def exported_module(path: str | Path, sidecar: Mapping[str, Any], device: str = "auto") -> torch.nn.Module:
    """The exported ONNX network as a torch module (:class:`OnnxModule`, run on the CPU).

    TorchScript files are refused: loading one runs the code stored in it (and unpickles its
    constants), which facevox does only for files it wrote in the same process (the export's check)."""
    if sidecar["format"] != "onnx":
        raise FacevoxError("facevox.load reads ONNX exports only: a TorchScript file runs the code stored in it "
                           "(use torch.jit.load on files you trust)", shown_name(path))
    from facevox.export.onnx_model import OnnxModel, OnnxModule

    if device not in ("auto", "cpu"):
        raise FacevoxError("an ONNX model runs on the CPU (onnxruntime); use device='cpu'", "device")
    fixed = sidecar.get("input", {}).get("fixed_samples") if sidecar["task"] == "speaker" else None
    return OnnxModule(OnnxModel(path, fixed_length=fixed))


def load_exported(path: str | Path, *, device: str = "auto", precision: str = "fp32", **options: Any) -> Any:
    """The task's inference object for an exported file (its sidecar says the task and the extras)."""
    from facevox import api

    path = Path(path)
    sidecar = read_sidecar(path)
    if precision not in ("fp32", "auto"):
        raise FacevoxError(f"an ONNX model runs in fp32, got precision {precision!r}", "precision")
    module = exported_module(path, sidecar, device)
    device, precision = "cpu", "fp32"
    task, extra = sidecar["task"], dict(sidecar.get("extra") or {})
    if task == "speaker" and sidecar.get("input", {}).get("time") == "fixed":  # every window the exported length
        scoring = dict(extra.get("scoring") or {})
        scoring["window_seconds"] = sidecar["input"]["fixed_samples"] / sidecar["input"]["sample_rate"]
        extra["scoring"] = scoring
    model = sidecar.get("model") or {}
    folder = ModelFolder(path=path, model=module,
                         spec={"name": model.get("name", sidecar["format"]), "kwargs": model.get("kwargs") or {}},
                         config={}, metrics={}, extra=extra, card="", task=task)
    opts = dict(options)
    if task == "speaker":
        from facevox.tasks.speaker.evaluate import SpeakerScorer

        api._no_more(opts, path)
        return api.SpeakerVerifier(SpeakerScorer(folder, "model", use="facevox.load", device=device,
                                                 precision=precision))
    if task == "face":
        from facevox.tasks.face.evaluate import FaceScorer

        aligned, detector = bool(opts.pop("aligned", False)), str(opts.pop("detector", "dlib"))
        api._no_more(opts, path)
        return api.FaceVerifier(FaceScorer(folder, "model", precision=precision, use="facevox.load", device=device),
                                aligned=aligned, detector=detector)
    from facevox.tasks.fakeface.scoring import Detector

    api._no_more(opts, path)
    return api.FakeFaceDetector(path, device=device, precision=precision,
                                detector=Detector.from_folder(folder, device=device, precision=precision))
