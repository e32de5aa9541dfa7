"""``facevox export``: a model folder -> an ONNX (dynamo exporter) or TorchScript file and its sidecar.

Exported: speaker embedding models (waveforms (B, T) at 16 kHz, the STFT/fbank front end inside),
face embedding models (RGB crops (B, 3, H, W) in [0, 1]) and GAN-face detectors (RGB (B, 3, S, S)).
The batch axis is dynamic, and the time axis of speaker models too where the exporter can make it
so (else a fixed length, recorded in the sidecar). The sidecar ``OUT.json`` holds what a loader
needs: format, source folder, task, input, parity (max |exported - torch| on random inputs), opset,
facevox version and the folder's ``extra.json`` (threshold, calibration, ...).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.checkpoint import read_model_folder
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_json
from facevox.textfile import shown_name

FORMATS = ("onnx", "torchscript")
SAMPLE_RATE = 16000
FIXED_SECONDS = 2.0  # the time axis of a speaker model whose export cannot leave it dynamic
MIN_SAMPLES = 1600  # the shortest wave a dynamic-time export accepts (0.1 s)
WARN_DIFF = 1e-3


def input_spec(folder: Any) -> dict[str, Any]:
    """What the model reads: name, example shape (batch of 2) and, for speaker models, the sample rate;
    unsupported folders are a one-line error naming the folder."""
    task, extra, where = folder.task, folder.extra, shown_name(folder.path)
    if task == "speaker":
        if extra.get("kind") == "pair" or folder.spec["name"] == "speaker_pair":
            raise FacevoxError("a pair classifier cannot be exported (it scores two waves, not one embedding)",
                               where)
        window = float(extra.get("scoring", {}).get("window_seconds", 0.0) or 0.0)
        return {"name": "wave", "shape": [2, 8000], "sample_rate": SAMPLE_RATE,
                "fixed_samples": int((window or FIXED_SECONDS) * SAMPLE_RATE)}
    if task == "face":
        h, w = (int(v) for v in extra.get("input_size", (112, 112)))
        return {"name": "image", "shape": [2, 3, h, w]}
    if task == "fakeface":
        s = int(extra.get("load_size", 256))
        return {"name": "image", "shape": [2, 3, s, s]}
    raise FacevoxError(f"cannot export a {task or 'task-less'} model folder; export supports speaker embedding, "
                       "face and fakeface models", where)


def random_input(shape: list[int], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if len(shape) == 2:  # waves
        return 0.1 * torch.randn(*shape, generator=gen)
    return torch.rand(*shape, generator=gen)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings and progress lines are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "torch.fx",
                                               "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _onnx(model: nn.Module, x: torch.Tensor, tmp: Path, time_dim: bool) -> None:
    from torch.export import Dim

    dims = {0: Dim("batch", min=1, max=4096)}
    if time_dim:
        dims[1] = Dim("time", min=MIN_SAMPLES, max=SAMPLE_RATE * 3600)
    program = torch.onnx.export(model, (x,), input_names=["input"], output_names=["output"],
                                dynamic_shapes=(dims,), dynamo=True, verbose=False)
    program.save(str(tmp))


def _write(model: nn.Module, fmt: str, x: torch.Tensor, tmp: Path, time_dim: bool) -> None:
    with _quiet(), torch.no_grad():
        if fmt == "onnx":
            _onnx(model, x, tmp, time_dim)
        else:
            torch.jit.save(torch.jit.trace(model, (x,), check_trace=False), str(tmp))


def runner(path: Path, fmt: str) -> Callable[[np.ndarray], np.ndarray]:
    """The exported file as a numpy function (onnxruntime, or the TorchScript module)."""
    if fmt == "onnx":
        from facevox.export.onnx_model import OnnxModel

        return OnnxModel(path)
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


def max_diff(model: nn.Module, run: Callable[[np.ndarray], np.ndarray], x: torch.Tensor) -> tuple[float, float]:
    """``(max |exported - torch|, the same over max(1, max |torch|))``: the second is what is checked, since
    random weights can give outputs of magnitude 1e5 whose float32 rounding alone differs by 0.1."""
    with torch.no_grad():
        ref = model(x).float().numpy()
    d = float(np.max(np.abs(run(x.numpy()) - ref)))
    return d, d / max(1.0, float(np.max(np.abs(ref))))


def parity(model: nn.Module, run: Callable[[np.ndarray], np.ndarray], shapes: list[list[int]]
           ) -> tuple[float, float]:
    """:func:`max_diff` over random inputs of each shape (other seeds than the export's input), the largest."""
    diffs = [max_diff(model, run, random_input(s, i + 1)) for i, s in enumerate(shapes)]
    return max(d[0] for d in diffs), max(d[1] for d in diffs)


def _export_and_check(model: nn.Module, fmt: str, spec: dict[str, Any], tmp: Path
                      ) -> tuple[tuple[float, float], bool]:
    """Write ``tmp``; returns the parity and whether the time axis stayed dynamic (speaker models)."""
    shape = list(spec["shape"])
    if "sample_rate" not in spec:
        _write(model, fmt, random_input(shape), tmp, False)
        run = runner(tmp, fmt)
        return parity(model, run, [shape, [1, *shape[1:]]]), False
    recurrent = any(isinstance(m, nn.RNNBase) for m in model.modules())  # the exporter cannot free their time axis
    if not (recurrent and fmt == "onnx"):
        try:  # a dynamic time axis, checked at two other lengths and batch sizes
            _write(model, fmt, random_input(shape), tmp, True)
            run = runner(tmp, fmt)
            diff = parity(model, run, [[2, 8000], [3, 12345], [1, 20000]])
            if diff[1] <= WARN_DIFF:
                return diff, True
        except Exception:  # the exporter (or the traced graph) cannot follow another length: fix it
            pass
    shape = [2, spec["fixed_samples"]]
    _write(model, fmt, random_input(shape), tmp, False)
    run = runner(tmp, fmt)
    return parity(model, run, [shape, [1, shape[1]]]), False


def _opset(path: Path, fmt: str) -> int | None:
    if fmt != "onnx":
        return None
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def export_model(folder_path: str | Path, out: str | Path, fmt: str = "onnx", *, quiet: bool = False) -> dict[str, Any]:
    """Export a model folder to ``out`` (written atomically) and its sidecar ``out.json``; returns the sidecar."""
    if fmt not in FORMATS:
        raise FacevoxError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}", "--format")
    out = Path(out)
    if not out.parent.is_dir():
        raise FacevoxError("the folder to write into does not exist", shown_name(out.parent))
    if out.is_dir():
        raise FacevoxError("--out names a folder; it must be a file to write", shown_name(out))
    if fmt == "onnx":
        _check_onnx_installed()
    folder = read_model_folder(folder_path, task=("speaker", "face", "fakeface"), use="facevox export")
    spec = input_spec(folder)
    model = folder.model.cpu().eval()
    from facevox import __version__

    with atomic_path(out) as tmp:
        try:
            (diff, scaled), dynamic_time = _export_and_check(model, fmt, spec, tmp)
        except Exception as err:  # an operator the exporter has no translation for, ...: one line, not a traceback
            text = " ".join(str(err).split())[:200]
            raise FacevoxError(f"cannot export model '{folder.spec['name']}' to {fmt} ({type(err).__name__}: "
                               f"{text})", shown_name(folder.path)) from None
        if spec.get("sample_rate"):
            spec["time"] = "dynamic" if dynamic_time else "fixed"
            if dynamic_time:
                spec["min_samples"] = MIN_SAMPLES
                del spec["fixed_samples"]
            else:
                spec["shape"] = [2, spec["fixed_samples"]]
        sidecar = {"format": fmt, "source": str(Path(folder_path).resolve()), "task": folder.task,
                   "model": folder.spec, "input": {**spec, "batch": "dynamic"}, "max_abs_diff": diff,
                   "max_diff_scaled": scaled,
                   "opset": _opset(tmp, fmt), "facevox_version": __version__, "torch_version": torch.__version__,
                   "extra": folder.extra}
        atomic_write_json(Path(f"{out}.json"), sidecar)
    if not quiet:
        print(f"exported {shown_name(folder.path)} ({folder.task}) -> {out} ({fmt}); max |exported - torch| "
              f"{diff:.3g} ({scaled:.3g} of the output's scale)")
    if scaled > WARN_DIFF:
        print(f"warning: the exported model differs from the torch one by up to {diff:.3g} ({scaled:.3g} of "
              "the output's scale)", file=sys.stderr)
    return sidecar


def _check_onnx_installed() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise FacevoxError(f'ONNX export needs {", ".join(missing)}: pip install "facevox[export]"', "--format")
