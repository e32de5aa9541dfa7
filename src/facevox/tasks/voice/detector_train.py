"""``facevox voice train``: the LCNN through the shared training loop, or the spectral baseline by
logistic regression, on the train split of a make-fakes index; then the test split is evaluated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.checkpoint import ModelCard, save_model
from facevox.errors import FacevoxError
from facevox.inference_spec import VoiceDetectorSpec
from facevox.metrics import average_precision
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.speaker.datasets import header_seconds
from facevox.tasks.voice.detector_config import SAMPLE_RATE, TASK, DetectorConfig, detector_spec
from facevox.tasks.voice.detector_data import (
    Clip,
    FrontEnd,
    TrainCrops,
    VoiceDetector,
    check_generators,
    index_path,
    keep_generators,
    read_index,
)
from facevox.train import Trainer, seed_everything


def build_model(cfg: DetectorConfig) -> nn.Module:
    m, f = cfg.model, cfg.features
    n_freq, frames = f.n_fft // 2 + 1, int(cfg.data.crop_seconds * SAMPLE_RATE) // f.hop_length + 1
    if m.name == "speech_spectral_logreg":
        return create_model(m.name, bands=m.bands, n_freq=n_freq, frames=frames)
    return create_model(m.name, channels=list(m.channels), hidden=m.hidden, dropout=m.dropout, n_freq=n_freq,
                        frames=frames)


def _check_headers(clips: list[Clip], min_seconds: float) -> None:
    """Every listed file exists and has a readable header of at least ``min_seconds`` (before training)."""
    for c in clips:
        if header_seconds(c.path) < min_seconds:
            raise FacevoxError(f"audio too short ({header_seconds(c.path):.2f} s, need at least {min_seconds:g} s)",
                               c.path)


def _both(clips: list[Clip], what: str, where: Any) -> tuple[int, int]:
    n_real, n_fake = sum(c.label == 0 for c in clips), sum(c.label == 1 for c in clips)
    if min(n_real, n_fake) == 0:
        raise FacevoxError(f"the {what} needs real and generated clips, has {n_real} real and {n_fake} fake", where)
    return n_real, n_fake


def train_detector(cfg: DetectorConfig, out: Path, *, resume: bool = True, licence: str = "unknown",
                   evaluate_test: bool = True, workers: int = 0) -> dict[str, Any]:
    """Train on the train split (fakes of ``cfg.data.train_generators`` only, when given); save OUT/model;
    evaluate the test split (all generators) into OUT/eval."""
    d = cfg.data
    check_generators(d.train_generators, "--train-generators")
    if not d.source:
        raise FacevoxError("no data given (the index.csv of facevox voice make-fakes, or its folder)", "data.source")
    index = index_path(d.source)
    splits = read_index(index)
    train = keep_generators(splits["train"], d.train_generators)
    val = keep_generators(splits["val"], d.train_generators)
    n_real, n_fake = _both(train, "train split", index)
    spec = detector_spec(cfg)
    for part in (train, val, splits["test"] if evaluate_test else []):
        _check_headers(part, spec.min_seconds)
    resuming = check_resume(out, cfg, resume=resume)
    seed_everything(cfg.seed)
    model = build_model(cfg)
    start_run(out, cfg, resuming=resuming)
    gens = ", ".join(d.train_generators) or "all generators"
    print(f"voice train: {cfg.model.name} on {n_real} real + {n_fake} generated clips ({gens}), "
          f"{len(val)} for validation, index {index}")
    t0 = time.perf_counter()
    if cfg.model.name == "speech_spectral_logreg":
        from facevox.tasks.voice.detector_spectral import fit_spectral

        fit_spectral(VoiceDetector(model, spec), train, cfg.model.c, balanced=d.balance != "none")
    else:
        _fit_lcnn(model, cfg, spec, out, train, val, resume)
    seconds = time.perf_counter() - t0
    model = model.cpu().eval()
    val_metrics: dict[str, float] = {}
    if val and len({c.label for c in val}) == 2:
        p = VoiceDetector(model, spec).score_files([c.path for c in val], workers=workers)
        val_metrics["val_average_precision"] = float(average_precision(p, [c.label for c in val]))
    extra = {**spec.to_extra(), "train_seconds": seconds, "index": str(index), "train_clips": len(train),
             "train_generators": list(d.train_generators) or "all", **val_metrics}
    card = ModelCard(task=TASK, data=f"{index}: {n_real} real, {n_fake} generated training clips ({gens})",
                     licence=licence, description="Generated-speech detector: P(fake) of a 16 kHz clip, the "
                     "logits of fixed windows of its log-spectrogram averaged.",
                     intended_use="facevox voice eval|predict|explain")
    folder = save_model(out / "model", model, card=card, config=cfg, metrics=val_metrics, extra=extra)
    result: dict[str, Any] = {"model": folder, "train_seconds": seconds, **val_metrics}
    if evaluate_test and splits["test"]:
        from facevox.tasks.voice.detector_eval import evaluate_voice

        result["test"] = evaluate_voice(folder, index, out / "eval", workers=workers)
    return result


def _fit_lcnn(model: nn.Module, cfg: DetectorConfig, spec: VoiceDetectorSpec, out: Path, train: list[Clip],
              val: list[Clip], resume: bool) -> None:
    d = cfg.data
    data = TrainCrops(train, int(d.crop_seconds * SAMPLE_RATE), spec.min_seconds)
    n_fake, n_real = int(data.labels.sum()), int((data.labels == 0).sum())
    pos_weight = torch.tensor(n_real / n_fake if d.balance == "weighted_loss" else 1.0)
    front = FrontEnd(spec)

    def compute_loss(m: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        wave, y = batch
        logit = m(front.to(wave.device)(wave)).float()[:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, y, pos_weight=pos_weight.to(wave.device))
        return {"loss": loss, "acc": ((logit > 0).float() == y).float().mean()}

    def epoch_end(trainer: Trainer, epoch: int) -> dict[str, float] | None:
        if len({c.label for c in val}) < 2:
            return None
        det = VoiceDetector(trainer.model, spec, trainer.device)
        p = det.score_files([c.path for c in val])
        trainer.model.train()
        y = np.array([c.label for c in val])
        return {"val_ap": float(average_precision(p, y)), "val_acc": float(np.mean((p >= 0.5) == y))}

    Trainer(model, compute_loss, data, cfg.train, out / "train", epoch_end=epoch_end).fit(resume=resume)
    model.to(memory_format=torch.contiguous_format)
