"""``facevox fakeface attack``: attack the GAN-face detector on labelled images and report AP under attack.

Images (a ``real/`` + ``fake/`` folder or a manifest) are resized to the detector's square first
(the attack perturbs what the network sees, in pixel units of [0, 1]: 4/255 is four grey levels).
Untargeted, each image is pushed across the decision (a fake scored real, a real scored fake);
``fakes_only`` attacks only the fakes (the forger's goal) and keeps the reals clean. The average
precision is computed over all images from the detector's P(fake) on the attacked set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.attacks.base import create_attack
from facevox.attacks.perceptual import example_measures
from facevox.attacks.report import write_attack_report
from facevox.attacks.runner import run_attacks
from facevox.errors import FacevoxError
from facevox.image.io import load_image
from facevox.image.transforms import resize_square
from facevox.metrics import average_precision
from facevox.outdir import prepare_output
from facevox.tasks.fakeface.data import read_source

ATTACK_NAMES = ("fgsm", "pgd")
MEASURES_IMAGE = ("linf", "psnr", "ssim")


def parse_budget(text: str) -> float:
    """``"4/255"`` or ``"0.0157"`` -> a float in pixel units of [0, 1]."""
    try:
        if "/" in text:
            a, b = text.split("/", 1)
            value = float(a) / float(b)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise FacevoxError(f"expected a number or a fraction such as 4/255, got '{text}'", "--eps") from None
    if not (np.isfinite(value) and 0 < value < 1):
        raise FacevoxError(f"must be in (0, 1) pixel units (4/255 = 0.0157), got {text}", "--eps")
    return value


def attack_detector(model: str | Path, data: str | Path, out: str | Path, *, attacks: Sequence[str] = ("pgd",),
                    eps: Sequence[float] = (1 / 255, 2 / 255, 4 / 255), pgd_steps: int = 10, max_images: int = 0,
                    fakes_only: bool = False, batch_size: int = 16, examples: int = 4,
                    progress: bool = True) -> dict[str, Any]:
    """Run the attacks and write OUT (:func:`facevox.attacks.report.write_attack_report`) with the
    AP under each attack and budget."""
    from facevox.attacks.victims import FakeFaceVictim

    for a in attacks:
        if a not in ATTACK_NAMES:
            raise FacevoxError(f"unknown attack '{a}'; valid: {', '.join(ATTACK_NAMES)}", "--attack")
    prepare_output(out)
    victim = FakeFaceVictim(model)
    items = read_source(data)
    if max_images:
        rng = np.random.default_rng(0)  # a fixed sample of both classes
        items = [items[i] for i in sorted(rng.permutation(len(items))[:max_images])]
    if not items or len({it.label for it in items}) < 2:
        raise FacevoxError("needs real and fake images", data)
    size = victim.load_size
    x = torch.from_numpy(np.stack([resize_square(load_image(it.path), size) for it in items])
                         ).permute(0, 3, 1, 2).float() / 255
    labels = torch.tensor([it.label for it in items])
    names = [f"{'fake' if it.label else 'real'}/{it.path.name}" for it in items]
    keep = labels == 1 if fakes_only else torch.ones(len(items), dtype=torch.bool)
    plans = [(a, float(e), create_attack(a, norm="linf", eps=float(e),
                                         **({"steps": pgd_steps, "seed": 0} if a == "pgd" else {})))
             for a in attacks for e in eps]

    def measure(c: np.ndarray, a: np.ndarray) -> dict:
        return {k: v for k, v in example_measures(c, a, "image").items() if k in MEASURES_IMAGE}

    idx = torch.nonzero(keep).flatten()
    with torch.no_grad():
        clean_p = torch.sigmoid(victim.fake_logit(x)).numpy()
    attacked = [clean_p.copy() for _ in plans]  # P(fake) of the attacked set per plan (reals clean when fakes_only)

    def score(p: int, rows_of: slice, res: Any) -> None:
        with torch.no_grad():
            attacked[p][idx[rows_of].numpy()] = torch.sigmoid(victim.fake_logit(res.x_adv)).numpy()

    rows, ex = run_attacks(victim, x[idx], labels[idx], [names[i] for i in idx], plans, measure,
                           batch_size=batch_size, n_examples=examples, progress=progress, on_batch=score)
    ap = {"clean": float(average_precision(clean_p, labels.numpy()))}
    for (attack, budget, _), p in zip(plans, attacked, strict=True):
        ap[f"{attack}@{budget * 255:g}/255"] = float(average_precision(p, labels.numpy()))
    notes = [f"model: {model}", f"data: {data}: {int(labels.sum())} fake and {int((1 - labels).sum())} real images "
             f"at {size}x{size}", "budgets: L-inf in pixel units of [0, 1]" +
             ("; only the fakes are attacked" if fakes_only else "; every image is pushed across the decision")]
    ex = [(n, np.transpose(c, (1, 2, 0)), np.transpose(a, (1, 2, 0))) for n, c, a in ex]
    return write_attack_report(out, f"GAN-face detector under attack: {Path(model).name}", rows, MEASURES_IMAGE,
                               "L-inf budget (pixel units)", notes=notes, examples=ex, modality="image",
                               extra={"average_precision": ap, "images": len(items), "fakes_only": fakes_only})
