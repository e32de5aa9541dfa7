"""Training a face embedder with a margin loss on a folder per identity of aligned crops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.checkpoint import ModelCard, save_model
from facevox.datasets.checks import check_each
from facevox.datasets.index import FileIndex, use_memory
from facevox.datasets.shards import is_shard_source
from facevox.errors import FacevoxError, naming
from facevox.image.io import image_size
from facevox.inference_spec import FaceSpec
from facevox.losses.schedule import check_warmup_epochs, loss_step_hooks
from facevox.losses.settings import build_loss
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.face.config import FaceConfig
from facevox.tasks.face.data import FaceImages, FaceRecord, LazyFaceImages, load_faces
from facevox.tasks.face.pairs import read_identities
from facevox.train import Trainer, seed_everything
from facevox.verification.heldout import hold_out


def build_backbone(cfg: FaceConfig) -> nn.Module:
    kwargs = {"embed_dim": cfg.model.embed_dim, "input_size": tuple(cfg.data.input_size), **cfg.model.backbone_kwargs}
    with naming("model.backbone_kwargs"):  # a size or argument the backbone refuses
        return create_model(cfg.model.backbone, **kwargs)


def _make_loss(cfg: FaceConfig, num_classes: int) -> nn.Module:
    """The loss head; a bad loss.name or loss.kwargs is a one-line error naming the key."""
    return build_loss(cfg.loss.name, cfg.loss.kwargs, embed_dim=cfg.model.embed_dim, num_classes=num_classes)


def _step_hooks(head: nn.Module, cfg: FaceConfig, batches_per_epoch: int, total_steps: int | None = None) -> list:
    """The loss's schedule (margin warm-up; SphereFace's lambda annealing) as Trainer step hooks."""
    return loss_step_hooks(head, cfg.loss.margin_warmup_epochs, batches_per_epoch, total_steps)


def _held_out(identities: dict[str, list[Path]], n: int, seed: int) -> dict[str, list[Path]]:
    """``n`` identities (the shared seeded rule) kept out of training to fit the calibration and threshold."""
    held = hold_out({k: len(v) for k, v in identities.items()}, n, seed, "data.calib_identities", least=2,
                    noun="identities")
    return {name: files for name, files in identities.items() if name in held}


def _calib_faces(calib: dict[str, list[Path]], cfg: FaceConfig) -> tuple[list[np.ndarray], list[str]]:
    """The held-out crops and whose they are, decoded before training (a bad file stops the run, or is
    skipped and listed, before any time is spent); they must give both same and different pairs."""
    paths = [p for files in calib.values() for p in files]
    owner = {p: n for n, files in calib.items() for p in files}
    arrays, kept = load_faces(paths, tuple(cfg.data.input_size), cfg.data.skip_bad)
    who = [owner[p] for p in kept]
    counts = Counter(who)
    if len(counts) < 2 or max(counts.values()) < 2:
        raise FacevoxError("the held-out identities give no same or no different pairs", "data.calib_identities")
    return arrays, who


def _threshold(model: nn.Module, arrays: list[np.ndarray], who: list[str], cfg: FaceConfig) -> dict[str, Any]:
    """Calibration (llr = a * cosine + b) and the threshold at ``scoring.target_far`` on all pairs
    of the held-out identities (:func:`facevox.verification.calibration.calibrate_held_out`)."""
    from facevox.tasks.face.embed import FaceEmbedder
    from facevox.verification.calibration import all_pairs, calibrate_held_out, held_out_metrics
    from facevox.verification.scoring import pair_similarity

    emb = FaceEmbedder(model, tuple(cfg.data.input_size), flip=cfg.scoring.flip).embed(arrays)
    cal = calibrate_held_out(emb, who, cfg.scoring.target_far)
    i, j, same = all_pairs(who)
    tar = float(np.mean(pair_similarity(emb[i], emb[j])[same] >= cal.threshold))
    calib = sorted(set(who))
    print(f"face: threshold {cal.threshold:.4f} at FAR {cfg.scoring.target_far:g} on {len(calib)} held-out identities "
          f"(TAR {tar:.3f})")
    return {"threshold": cal.threshold, "threshold_far": cfg.scoring.target_far, "threshold_tar": tar,
            "calibration": cal, "calibration_fitted_on": "held-out identities of training",
            "calib_identities": calib, "metrics": held_out_metrics(emb, who, cal)}


def train_face(cfg: FaceConfig, out: Path, *, resume: bool = True, licence: str = "unknown") -> dict[str, Any]:
    """Train ``cfg.model.backbone`` with ``cfg.loss`` on ``cfg.data.train``; save OUT/model."""
    if not cfg.data.train:
        raise FacevoxError("no training data given (set data.train to a folder per identity)", "data.train")
    resuming = check_resume(out, cfg, resume=resume)  # before anything is read or written
    seed_everything(cfg.train.seed)
    model = build_backbone(cfg)  # before anything is written: a bad name leaves nothing behind
    _make_loss(cfg, num_classes=2)  # and the loss settings, before any image is decoded
    check_warmup_epochs(cfg.loss.margin_warmup_epochs)
    if is_shard_source(cfg.data.train):
        return _train_from_shards(cfg, out, model, resuming, resume=resume, licence=licence)
    identities = {n: f for n, f in read_identities(cfg.data.train).items() if len(f) >= cfg.data.min_images}
    calib = _held_out(identities, cfg.data.calib_identities, cfg.train.seed)
    identities = {n: f for n, f in identities.items() if n not in calib}
    if len(identities) < 2:
        raise FacevoxError(f"training needs at least 2 identities with {cfg.data.min_images}+ images, "
                           f"found {len(identities)}", cfg.data.train)
    paths = [p for files in identities.values() for p in files]
    size = tuple(cfg.data.input_size)
    if use_memory(cfg.data.in_memory, len(paths)):
        label_of = {p: i for i, files in enumerate(identities.values()) for p in files}
        arrays, kept = load_faces(paths, size, cfg.data.skip_bad)
        labels = np.array([label_of[p] for p in kept])
        dataset: Any = FaceImages(arrays, labels, cfg.data.flip)
        n_images = len(kept)
    else:  # headers checked now, every crop decoded in the DataLoader workers
        names = [n for n, files in identities.items() for _ in files]
        keep = check_each(paths, image_size, cfg.data.skip_bad, "image")
        index = FileIndex.build([paths[i] for i in keep], [names[i] for i in keep], classes=list(identities))
        del paths, names
        dataset = LazyFaceImages(index, size, cfg.data.flip, cfg.data.skip_bad)
        n_images = len(index)
    calib_faces = _calib_faces(calib, cfg) if calib else None  # every image is checked before training
    n_identities = len(identities)
    del identities, calib  # lists of paths: not to be inherited by the DataLoader workers
    return _fit(cfg, out, model, dataset, n_identities, n_images, calib_faces, resuming, resume=resume,
                licence=licence)


def _train_from_shards(cfg: FaceConfig, out: Path, model: nn.Module, resuming: bool, *, resume: bool,
                       licence: str) -> dict[str, Any]:
    """Training streamed from shards (facevox data shard --task face)."""
    from facevox.datasets.shards import read_shards
    from facevox.datasets.stream import BatchStream

    d = cfg.data
    shards = read_shards(d.train)
    shards.check_task("face", "data.train")
    if d.calib_identities:
        raise FacevoxError("held-out identities need their files; train from the image folder (decoded lazily) "
                           "to set a threshold, or set 0 with shards", "data.calib_identities")
    counts = shards.info.get("class_counts") or []
    few = [shards.classes[i] for i, c in enumerate(counts) if 0 < c < d.min_images]
    if few:
        raise FacevoxError(f"{len(few)} identities of the shards have fewer than {d.min_images} images (e.g. "
                           f"{few[0]}); shards keep every identity: set data.min_images=1 or shard a folder without "
                           "them", "data.min_images")
    if len(shards.classes) < 2:
        raise FacevoxError(f"training needs at least 2 identities, found {len(shards.classes)}", d.train)
    stream = BatchStream(shards, FaceRecord(tuple(d.input_size), d.flip), skip_bad=d.skip_bad)
    return _fit(cfg, out, model, stream, len(shards.classes), len(stream), None, resuming, resume=resume,
                licence=licence)


def _fit(cfg: FaceConfig, out: Path, model: nn.Module, dataset: Any, n_identities: int, n_images: int,
         calib_faces: Any, resuming: bool, *, resume: bool, licence: str) -> dict[str, Any]:
    head = _make_loss(cfg, num_classes=n_identities)
    both = nn.ModuleDict({"model": model, "head": head})

    def compute_loss(m: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        emb = m["model"](x)
        loss = m["head"](emb, y)
        with torch.no_grad():
            acc = (m["head"].logits(emb.float()).argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc}

    start_run(out, cfg, resuming=resuming)
    trainer = Trainer(both, compute_loss, dataset, cfg.train, out / "train")
    trainer.step_hooks.extend(_step_hooks(head, cfg, trainer.batches_per_epoch, trainer.total_steps))
    print(f"face: training {cfg.model.backbone} with {cfg.loss.name} on {n_images} images of "
          f"{n_identities} identities")
    trainer.fit(resume=resume)
    train_seconds = trainer.seconds  # summed over resumed runs
    model.to(memory_format=torch.contiguous_format)
    fitted = _threshold(model, *calib_faces, cfg) if calib_faces is not None else {}
    metrics = fitted.pop("metrics", {"held_out": "none (hold out identities with data.calib_identities=N to measure)"})
    spec = FaceSpec(input_size=tuple(cfg.data.input_size), flip=cfg.scoring.flip, loss=cfg.loss.name,
                    threshold=fitted.pop("threshold", None), calibration=fitted.pop("calibration", None))
    extra = {**spec.to_extra(), "train_seconds": train_seconds, "train_identities": n_identities,
             "train_images": n_images, **fitted}
    folder = save_model(out / "model", model, config=cfg, extra=extra, metrics=metrics,
                        card=ModelCard(task=f"face verification embeddings ({cfg.loss.name} loss)",
                                       data=f"{cfg.data.train}: {n_identities} identities, {n_images} images",
                                       licence=licence))
    return {"model": folder, "train_seconds": train_seconds}
