"""``facevox voice explain``: where in time and frequency the detector looks, as a heatmap drawn over
the clip's log-spectrogram (gradient saliency, Integrated Gradients or Grad-CAM, facevox.explain)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps

from facevox.audio.io import load_audio
from facevox.errors import FacevoxError
from facevox.explain import create_explainer
from facevox.explain.overlay import overlay
from facevox.outdir import output_dir, prepare_output
from facevox.tasks.fakeface.saliency import detector_target, usable_methods
from facevox.tasks.voice.detector_data import load_detector

METHODS = {"saliency": "gradient", "integrated_gradients": "integrated_gradients", "gradcam": "gradcam"}
MAX_SECONDS = 10.0  # longer files are explained on their first 10 s


def _spectrogram_image(x: np.ndarray) -> np.ndarray:
    """(F, T) log-spectrogram -> uint8 RGB (F, T, 3), low frequencies at the bottom."""
    lo, hi = np.percentile(x, 1), np.percentile(x, 99.5)
    norm = np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)
    return (colormaps["gray"](norm[::-1])[..., :3] * 255 + 0.5).astype(np.uint8)


def explain_voice(model_dir: str | Path, file: str | Path, out: str | Path, *, methods: Sequence[str] = ("saliency",),
                  target: str = "predicted", device: str = "auto") -> Path:
    """Write OUT/saliency.png (the spectrogram, then one heatmap per method) and OUT/<method>.npy maps."""
    from facevox.report import _figure, _save

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise FacevoxError(f"unknown method '{bad[0]}'; valid: {', '.join(METHODS)}", "--method")
    prepare_output(out)
    det = load_detector(model_dir, "voice explain", device)
    wave = load_audio(file, det.spec.sample_rate, det.spec.min_seconds)[: int(MAX_SECONDS * det.spec.sample_rate)]
    with torch.no_grad():
        x = det.front(torch.from_numpy(wave)[None].to(det.device))  # (1, 1, F, T): the whole clip at once
    chosen = usable_methods(det.model, [METHODS[m] for m in methods])
    if not chosen:
        raise FacevoxError("none of the methods applies to this model (Grad-CAM needs a CNN)", "--method")
    p = det.probs([wave])[0]
    which = ("fake" if p >= det.threshold else "real") if target == "predicted" else target
    model = det.model.float().eval()
    maps = {}
    for name in chosen:
        with create_explainer(name, model=model) as explainer:
            maps[name] = explainer.attribute(x, detector_target(which))[0].cpu().numpy()
    spec = x[0, 0].cpu().numpy()
    image = _spectrogram_image(spec)
    seconds, khz = len(wave) / det.spec.sample_rate, det.spec.sample_rate / 2000
    with output_dir(out, "voice explain") as staged:
        fig = _figure(8.0, 2.6 * (1 + len(maps)))
        axes = fig.subplots(1 + len(maps), 1, squeeze=False)[:, 0]
        panels = [("log-spectrogram", image)]
        panels += [(m.replace("_", " "), overlay(image, v[::-1])) for m, v in maps.items()]
        for ax, (title, img) in zip(axes, panels, strict=True):
            ax.imshow(img, aspect="auto", extent=(0, seconds, 0, khz))
            ax.set_title(f"{Path(file).name}: P(fake) {p:.2f}, explaining '{which}' - {title}", fontsize=8)
            ax.set_ylabel("kHz")
        axes[-1].set_xlabel("seconds")
        _save(fig, staged / "saliency.png")
        for m, v in maps.items():
            np.save(staged / f"{m}.npy", v.astype(np.float32))
    return Path(out) / "saliency.png"
