"""Training a GAN-face detector: a CNN through the shared loop, or the spectral baseline by
logistic regression; then the test split is scored and reported."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevox.checkpoint import ModelCard, save_model
from facevox.datasets.index import use_memory
from facevox.datasets.shards import is_shard_source
from facevox.defences import Defence
from facevox.errors import FacevoxError
from facevox.fileio import load_each, report_skipped
from facevox.image.io import load_image
from facevox.image.transforms import check_box
from facevox.inference_spec import FakeFaceSpec
from facevox.metrics import average_precision, best_accuracy
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.fakeface.config import FakefaceConfig
from facevox.tasks.fakeface.data import (
    ImageRecord,
    LazyTrainImages,
    PreparedImages,
    TrainImages,
    batched_probs,
    image_index,
    load_resized,
    split_for,
)
from facevox.tasks.fakeface.scoring import Detector
from facevox.train import Trainer, seed_everything


def build_model(cfg: FakefaceConfig) -> nn.Module:
    if cfg.model.name == "spectral_logreg":
        return create_model("spectral_logreg", size=cfg.data.load_size)
    model = create_model(cfg.model.name, num_classes=1, dropout=cfg.model.dropout)
    if cfg.model.pretrained:
        from facevox.nets.resnet import load_torchvision_weights

        load_torchvision_weights(model, cfg.model.pretrained)
    return model


def _check(cfg: FakefaceConfig) -> None:
    d = cfg.data
    if cfg.model.name != "spectral_logreg" and not 32 <= d.crop_size <= d.load_size:
        raise FacevoxError(f"need 32 <= crop_size <= load_size, got {d.crop_size} and {d.load_size}", "data.crop_size")
    check_box(d.mask, "data.mask")
    if cfg.defence.kind != "none" and cfg.model.name == "spectral_logreg":
        raise FacevoxError("defences train the CNNs; the spectral baseline is fitted in one go", "defence.kind")
    if cfg.defence.kind == "neighbourhood" and is_shard_source(d.source):
        raise FacevoxError("the neighbourhood perturbs indexed items; train from the image folder or split file, "
                           "not from shards", "defence.kind")
    Defence(cfg.defence)


def _check_test_images(items: list[Any], skip_bad: bool, split_file: Path) -> None:
    """Decode every test image now (keeping none of them), so a bad one stops the run before training
    rather than after it; with ``skip_bad`` the bad ones are listed now and skipped again at evaluation."""
    _, bad = load_each([it.path for it in items], lambda p: load_image(p).shape, skip_bad)
    bad_paths = report_skipped(bad, "test image")
    labels = [it.label for it in items if it.path not in bad_paths]
    if len(set(labels)) < 2:
        raise FacevoxError(f"the test split needs real and fake images that decode; has {labels.count(0)} real "
                           f"and {labels.count(1)} fake", split_file)


def split_file_of(cfg: FakefaceConfig, out: Path) -> Path:
    return Path(cfg.data.split) if cfg.data.split else out / "split.csv"


def train_fakeface(cfg: FakefaceConfig, out: Path, *, resume: bool = True, licence: str = "unknown",
                   evaluate_test: bool = True) -> dict[str, Any]:
    """Train on the train split of ``cfg.data``; save OUT/model; score the test split into OUT/eval."""
    _check(cfg)
    resuming = check_resume(out, cfg, resume=resume)  # before anything is read or written
    seed_everything(cfg.train.seed)
    model = build_model(cfg)  # before anything is written: a bad name or weights file leaves nothing
    if is_shard_source(cfg.data.source):
        return _train_from_shards(cfg, out, model, resuming, resume=resume, licence=licence)
    split_file = split_file_of(cfg, out)
    new_split, out_existed = not split_file.exists(), out.exists()
    d = cfg.data
    try:  # a split written here is taken back if the data turns out bad: a failed run leaves nothing
        splits = split_for(cfg.data.source, split_file, cfg.data.split_fractions, cfg.data.split_seed,
                           announce=False)
        n_total = sum(map(len, splits.values()))
        in_ram = cfg.model.name == "spectral_logreg" or use_memory(d.in_memory, len(splits["train"]) +
                                                                    len(splits["val"]))
        if in_ram:
            train_arrays, train_items = load_resized(splits["train"], d.load_size, d.skip_bad, d.mask)
            val_arrays, val_items = load_resized(splits["val"], d.load_size, d.skip_bad, d.mask)
            labels = np.array([it.label for it in train_items])
            dataset: Any = TrainImages(train_arrays, labels, d.crop_size, d.augment)
            val_set: Any = list(zip(val_arrays, [it.label for it in val_items], strict=True))
        else:  # headers checked now, every image decoded in the DataLoader workers
            train_index, val_index = image_index(splits["train"], d.skip_bad), image_index(splits["val"], d.skip_bad)
            labels = train_index.labels
            dataset = LazyTrainImages(train_index, d.load_size, d.mask, d.crop_size, d.augment, d.skip_bad)
            val_set = PreparedImages(val_index, d.load_size, d.mask, d.skip_bad)
            splits["train"] = splits["val"] = []  # lists of objects: not to be inherited by the DataLoader workers
        n_fake, n_real = int(labels.sum()), int((labels == 0).sum())
        if min(n_fake, n_real) == 0:
            raise FacevoxError(f"the train split needs both classes, has {n_real} real and {n_fake} fake", split_file)
        if evaluate_test and splits["test"]:  # every image of every split is checked before training
            _check_test_images(splits["test"], d.skip_bad, split_file)
    except BaseException:
        if new_split:
            split_file.unlink(missing_ok=True)
            if not out_existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
        raise
    if new_split:
        print(f"fakeface: wrote split {split_file} ({n_total} images)", file=sys.stderr)
    start_run(out, cfg, resuming=resuming)
    print(f"fakeface: training {cfg.model.name} on {n_real} real + {n_fake} fake images "
          f"({len(val_set)} for validation), split {split_file}{Defence(cfg.defence).describe()}")

    t0 = time.perf_counter()
    if cfg.model.name == "spectral_logreg":
        from facevox.tasks.fakeface.spectral import fit_spectral

        fit_spectral(model, train_arrays, labels, balanced=d.balance != "none")
    else:
        _fit_cnn(model, cfg, out, dataset, labels, val_set, resume)
    train_seconds = time.perf_counter() - t0
    result = _finish(cfg, model, out, val_set, train_seconds, len(labels), n_real, n_fake,
                     data=f"{d.source or split_file}", split_file=str(split_file), licence=licence)
    if evaluate_test and splits["test"]:
        from facevox.tasks.fakeface.evaluate import evaluate_detector

        result["test"] = evaluate_detector(result["model"], split_file, out / "eval", split="test",
                                           skip_bad=d.skip_bad)
    return result


def _val_probs(detector: Detector, val_set: Any, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(fake), labels) of the validation set, a batch at a time (decoded in workers unless in RAM)."""
    workers = 0 if isinstance(val_set, list) else num_workers
    return batched_probs(detector, val_set, detector.batch_size, workers)


def _finish(cfg: FakefaceConfig, model: nn.Module, out: Path, val_set: Any, train_seconds: float, n_train: int,
            n_real: int, n_fake: int, *, data: str, split_file: str | None, licence: str) -> dict[str, Any]:
    """Validation metrics, and the model folder."""
    d = cfg.data
    val_metrics: dict[str, float] = {}
    threshold = 0.5
    if _has_both(val_set):
        p, y = _val_probs(Detector(model, d.load_size, mask=d.mask), val_set, cfg.train.num_workers)
        if len(set(y.tolist())) == 2:
            val_metrics = {"val_average_precision": float(average_precision(p, y)),
                           "val_best_threshold": float(best_accuracy(p, y)[1])}
    spec = FakeFaceSpec(load_size=d.load_size, threshold=threshold, mask=tuple(d.mask) if d.mask else None)
    extra = {**spec.to_extra(), "train_seconds": train_seconds, "split_file": split_file, "train_images": n_train,
             "defence": Defence(cfg.defence).record(), **val_metrics}
    folder = save_model(out / "model", model, config=cfg, metrics=val_metrics, extra=extra,
                        card=ModelCard(task="GAN-generated face detection (output: P(fake))",
                                       data=f"{data}: {n_real} real, {n_fake} fake training images",
                                       licence=licence))
    return {"model": folder, "train_seconds": train_seconds, **val_metrics}


def _has_both(val_set: Any) -> bool:
    """Whether the validation set has real and fake items (known from its labels, nothing decoded)."""
    if val_set is None:
        return False
    if isinstance(val_set, list):
        return len({y for _, y in val_set}) == 2
    if isinstance(val_set, PreparedImages):
        return len(set(val_set.index.labels.tolist())) == 2
    return bool(getattr(val_set, "both_classes", False))


def _train_from_shards(cfg: FakefaceConfig, out: Path, model: nn.Module, resuming: bool, *, resume: bool,
                       licence: str) -> dict[str, Any]:
    """CNN training streamed from shards (facevox data shard --task fakeface): the train split's items (all
    items when the shards have no split), validation on the val split's; the test split is not scored here
    (score it with facevox fakeface eval on the image files)."""
    from facevox.datasets.shards import read_shards
    from facevox.datasets.stream import BatchStream, RecordDataset

    d = cfg.data
    if cfg.model.name == "spectral_logreg":
        raise FacevoxError("the spectral baseline fits on images in RAM; train it from the image folder or split "
                           "file, not from shards", "model.name")
    shards = read_shards(d.source)
    shards.check_task("fakeface", "data.source")
    has_split = any(s is not None for s in shards.splits)
    train_split = "train" if has_split else None
    stream = BatchStream(shards, ImageRecord(d.load_size, d.mask, d.crop_size, d.augment), split=train_split,
                         skip_bad=d.skip_bad)
    n_train = len(stream)
    n_fake = _count_label(shards, train_split, 1)
    n_real = n_train - n_fake
    if min(n_fake, n_real) == 0:
        raise FacevoxError(f"the train split needs both classes, has {n_real} real and {n_fake} fake", d.source)
    val_set = None
    n_val = shards.items("val") if has_split else 0
    if n_val:
        val_set = RecordDataset(shards, ImageRecord(d.load_size, d.mask), split="val")
        val_set.both_classes = min(_count_label(shards, "val", 0), _count_label(shards, "val", 1)) > 0
    start_run(out, cfg, resuming=resuming)
    print(f"fakeface: training {cfg.model.name} on {n_real} real + {n_fake} fake images "
          f"({n_val} for validation), shards {shards.list_path}{Defence(cfg.defence).describe()}")
    t0 = time.perf_counter()
    labels = np.array([0] * n_real + [1] * n_fake)
    _fit_cnn(model, cfg, out, stream, labels, val_set, resume)
    train_seconds = time.perf_counter() - t0
    return _finish(cfg, model, out, val_set, train_seconds, n_train, n_real, n_fake, data=str(shards.list_path),
                   split_file=None, licence=licence)


def _count_label(shards: Any, split: str | None, label: int) -> int:
    """Items of ``label`` in ``split``, from the per-shard label counts of shards.json."""
    try:
        return sum(int(shards.info["shards"][int(j)]["label_counts"][label]) for j in shards.select(split))
    except (KeyError, IndexError, TypeError):
        raise FacevoxError("shards.json gives no per-shard label counts (write the shards again with facevox data "
                           "shard)", shards.list_path) from None


def _fit_cnn(model: nn.Module, cfg: FakefaceConfig, out: Path, dataset: Any, labels: np.ndarray,
             val_set: Any, resume: bool) -> None:
    d = cfg.data
    defence = Defence(cfg.defence)
    dataset = defence.dataset(dataset, cfg.train.seed)
    n_fake, n_real = int(labels.sum()), int((labels == 0).sum())
    pos_weight = torch.tensor(n_real / n_fake if d.balance == "weighted_loss" else 1.0)
    sample_weights = None
    if d.balance == "sampler":  # each class drawn equally often
        sample_weights = [1.0 / (n_fake if y else n_real) for y in labels] * defence.repeats

    def compute_loss(m: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        logit = m(x).float()[:, 0]
        loss = F.binary_cross_entropy_with_logits(logit, y, pos_weight=pos_weight)
        return {"loss": loss, "acc": ((logit > 0).float() == y).float().mean()}

    def epoch_end(trainer: Trainer, epoch: int) -> dict[str, float] | None:
        if not _has_both(val_set):
            return None
        det = Detector(trainer.model, d.load_size, precision=cfg.train.precision, mask=d.mask)
        p, y = _val_probs(det, val_set, cfg.train.num_workers)
        if len(set(y.tolist())) < 2:
            return None
        return {"val_ap": float(average_precision(p, y)), "val_acc": float(np.mean((p >= 0.5) == y))}

    trainer = Trainer(model, defence.loss(compute_loss), dataset, cfg.train, out / "train", epoch_end=epoch_end,
                      sample_weights=sample_weights)
    trainer.fit(resume=resume)
    model.to(memory_format=torch.contiguous_format)
