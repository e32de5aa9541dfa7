"""Training a face embedder with a margin loss on a folder per identity of aligned crops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.checkpoint import ModelCard, save_model
from facevox.config import save_config
from facevox.errors import FacevoxError
from facevox.losses.base import margin_warmup
from facevox.registry import create_loss, create_model
from facevox.tasks.face.config import FaceConfig
from facevox.tasks.face.data import FaceImages, load_faces
from facevox.tasks.face.pairs import read_identities
from facevox.train import Trainer, seed_everything


def build_backbone(cfg: FaceConfig) -> nn.Module:
    kwargs = {"embed_dim": cfg.model.embed_dim, "input_size": tuple(cfg.data.input_size), **cfg.model.backbone_kwargs}
    return create_model(cfg.model.backbone, **kwargs)


def _make_loss(cfg: FaceConfig, num_classes: int) -> nn.Module:
    try:
        return create_loss(cfg.loss.name, embed_dim=cfg.model.embed_dim, num_classes=num_classes, **cfg.loss.kwargs)
    except ValueError as err:  # a value the loss rejects
        raise FacevoxError(str(err), "loss.kwargs") from None


def _step_hooks(head: nn.Module, cfg: FaceConfig, batches_per_epoch: int) -> list:
    hooks = []
    if hasattr(head, "margin") and cfg.loss.margin_warmup_epochs > 0:
        hooks.append(margin_warmup(head, float(head.margin), int(cfg.loss.margin_warmup_epochs * batches_per_epoch)))
    anneal = getattr(head, "anneal", None)  # SphereFace: the softmax / margin blend decays with the step
    if callable(anneal):
        hooks.append(anneal)
    return hooks


def train_face(cfg: FaceConfig, out: Path, *, resume: bool = True, licence: str = "unknown") -> dict[str, Any]:
    """Train ``cfg.model.backbone`` with ``cfg.loss`` on ``cfg.data.train``; save OUT/model."""
    if not cfg.data.train:
        raise FacevoxError("no training data given (set data.train to a folder per identity)", "data.train")
    seed_everything(cfg.train.seed)
    model = build_backbone(cfg)  # before anything is written: a bad name leaves nothing behind
    identities = {n: f for n, f in read_identities(cfg.data.train).items() if len(f) >= cfg.data.min_images}
    if len(identities) < 2:
        raise FacevoxError(f"training needs at least 2 identities with {cfg.data.min_images}+ images, "
                           f"found {len(identities)}", cfg.data.train)
    paths = [p for files in identities.values() for p in files]
    label_of = {p: i for i, files in enumerate(identities.values()) for p in files}
    arrays, kept = load_faces(paths, tuple(cfg.data.input_size), cfg.data.skip_bad)
    labels = np.array([label_of[p] for p in kept])
    head = _make_loss(cfg, num_classes=len(identities))
    both = nn.ModuleDict({"model": model, "head": head})

    def compute_loss(m: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        emb = m["model"](x)
        loss = m["head"](emb, y)
        with torch.no_grad():
            acc = (m["head"].logits(emb.float()).argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc}

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    trainer = Trainer(both, compute_loss, FaceImages(arrays, labels, cfg.data.flip), cfg.train, out / "train")
    trainer.step_hooks.extend(_step_hooks(head, cfg, trainer.batches_per_epoch))
    print(f"face: training {cfg.model.backbone} with {cfg.loss.name} on {len(kept)} images of "
          f"{len(identities)} identities")
    t0 = time.perf_counter()
    trainer.fit(resume=resume)
    train_seconds = time.perf_counter() - t0
    model.to(memory_format=torch.contiguous_format)
    extra = {"task": "face", "input_size": list(cfg.data.input_size), "flip": cfg.scoring.flip,
             "train_seconds": train_seconds, "train_identities": len(identities), "train_images": len(kept),
             "loss": cfg.loss.name}
    folder = save_model(out / "model", model, config=cfg, extra=extra,
                        card=ModelCard(task=f"face verification embeddings ({cfg.loss.name} loss)",
                                       data=f"{cfg.data.train}: {len(identities)} identities, {len(kept)} images",
                                       licence=licence))
    return {"model": folder, "train_seconds": train_seconds}
