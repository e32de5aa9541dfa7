"""Training speaker models: embeddings with a margin loss, the seed's pair classifier, the Siamese net.

``train_speaker(cfg, out)`` trains through the shared :class:`~facevox.train.Trainer` and
saves a model folder at ``out/model`` (with the calibration and threshold in ``extra.json``
when speakers were held out for it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.audio.io import AUDIO_EXTENSIONS
from facevox.checkpoint import ModelCard, save_model
from facevox.datasets.index import read_labelled, use_memory
from facevox.datasets.shards import is_shard_source
from facevox.defences import Defence
from facevox.errors import FacevoxError, naming
from facevox.inference_spec import SpeakerSpec
from facevox.losses.schedule import check_warmup_epochs, loss_step_hooks
from facevox.losses.settings import build_loss
from facevox.registry import create_model
from facevox.runfolder import check_resume, start_run
from facevox.tasks.speaker.config import SpeakerConfig
from facevox.tasks.speaker.corpus import Corpus
from facevox.tasks.speaker.datasets import (
    SAMPLE_RATE,
    CropDataset,
    LazyWaves,
    PairDataset,
    SpeakerRecord,
    Waves,
    make_augment,
    split_calibration_index,
)
from facevox.tasks.speaker.scoring import WaveEmbedder, embed_files
from facevox.train import Trainer, seed_everything
from facevox.verification.calibration import Calibration, calibrate_held_out, held_out_metrics


def build_model(cfg: SpeakerConfig) -> nn.Module:
    """The waveform model of ``cfg.model`` (pretrained weights loaded when asked)."""
    m = cfg.model
    name = {"embedding": "speaker_embedder", "pair": "speaker_pair", "siamese": "speaker_siamese"}[m.kind]
    with naming("model.backbone_kwargs"):  # a size or argument the backbone refuses
        model = create_model(name, backbone=m.backbone, backbone_kwargs=m.backbone_kwargs, features=m.features,
                             n_mels=m.n_mels, specaugment=m.specaugment)
    if m.pretrained == "resemblyzer":
        from facevox.nets.voice_encoder import load_resemblyzer_weights

        if m.backbone != "voice_encoder" or m.features != "resemblyzer_mel":
            raise FacevoxError("pretrained=resemblyzer needs backbone voice_encoder and features resemblyzer_mel",
                               "model.pretrained")
        load_resemblyzer_weights(model.backbone)
    return model


PAIR_LOSSES = {"pair": "pair_bce", "siamese": "contrastive"}  # the loss each pair-trained kind takes


def _check_settings(cfg: SpeakerConfig) -> None:
    """Settings that would otherwise fail after the corpus is decoded, or after training."""
    kind, loss = cfg.model.kind, cfg.loss.name
    if kind in PAIR_LOSSES and loss != PAIR_LOSSES[kind]:
        raise FacevoxError(f"model kind '{kind}' is trained with the '{PAIR_LOSSES[kind]}' loss, got '{loss}'",
                           "loss.name")
    if kind == "embedding" and loss in PAIR_LOSSES.values():
        raise FacevoxError(f"'{loss}' trains pair models (model.kind pair or siamese), not embeddings", "loss.name")
    if cfg.data.calib_speakers == 1:
        raise FacevoxError("calibration needs at least 2 held-out speakers (for non-target trials)",
                           "data.calib_speakers")
    if cfg.data.calib_speakers > 0 and kind == "pair":
        raise FacevoxError("the pair classifier is not calibrated (its logit is its decision); set 0",
                           "data.calib_speakers")
    for name in ("noise_prob", "speed_prob"):
        if not 0.0 <= getattr(cfg.data, name) <= 1.0:
            raise FacevoxError(f"must be in [0, 1], got {getattr(cfg.data, name)}", f"data.{name}")
    if not 0.0 <= cfg.scoring.target_far <= 1.0:
        raise FacevoxError(f"must be in [0, 1], got {cfg.scoring.target_far}", "scoring.target_far")
    _make_loss(cfg, **({"embed_dim": 1, "num_classes": 2} if kind == "embedding" else {}))  # the loss settings
    check_warmup_epochs(cfg.loss.margin_warmup_epochs)
    Defence(cfg.defence)  # the defence settings


def _make_loss(cfg: SpeakerConfig, **sizes: int) -> nn.Module:
    """The loss (a head for embeddings); a bad loss.name or loss.kwargs is a one-line error naming the key."""
    return build_loss(cfg.loss.name, cfg.loss.kwargs, **sizes)


def _step_hooks(head: nn.Module, cfg: SpeakerConfig, batches_per_epoch: int, total_steps: int | None = None) -> list:
    """The loss's schedule (margin warm-up; SphereFace's lambda annealing) as Trainer step hooks."""
    return loss_step_hooks(head, cfg.loss.margin_warmup_epochs, batches_per_epoch, total_steps)


class L2SP(nn.Module):
    """alpha/2 * ||w - w0||^2 over the backbone (Li, Grandvalet and Davoine, ICML 2018)."""

    def __init__(self, backbone: nn.Module, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.params = [p for p in backbone.parameters() if p.requires_grad]
        self.start = [p.detach().clone() for p in self.params]

    def forward(self) -> torch.Tensor:
        if self.start and self.start[0].device != self.params[0].device:  # the Trainer moved the model
            self.start = [p0.to(p.device) for p, p0 in zip(self.params, self.start, strict=True)]
        return 0.5 * self.alpha * sum(((p - p0) ** 2).sum() for p, p0 in zip(self.params, self.start, strict=True))


@torch.no_grad()
def imprint_class_weights(head: nn.Module, model: nn.Module, waves: Waves | LazyWaves, seconds: float = 6.0) -> None:
    """Set each class weight to the speaker's mean normalised embedding ("weight imprinting",
    Qi, Brown and Lowe, CVPR 2018), so fine-tuning a pretrained encoder starts from a head that
    already agrees with it instead of sending random-head gradients into the pretrained weights."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(head.weight.shape, dtype=torch.float32)
    for i in range(len(waves)):
        wave = torch.from_numpy(waves.wave(i)[: int(seconds * SAMPLE_RATE)])[None]
        sums[int(waves.labels[i])] += torch.nn.functional.normalize(model(wave).float(), dim=1)[0]
    head.weight.copy_(torch.nn.functional.normalize(sums, dim=1).to(head.weight.dtype))
    model.train(was_training)


def train_speaker(cfg: SpeakerConfig, out: Path, *, card_data: str | None = None, licence: str = "unknown",
                  resume: bool = True) -> dict[str, Any]:
    """Train the model described by ``cfg`` on ``cfg.data.train``; returns a summary dict."""
    if not cfg.data.train:
        raise FacevoxError("no training corpus given (set data.train to a folder or manifest)", "data.train")
    _check_settings(cfg)
    resuming = check_resume(out, cfg, resume=resume)  # before anything is read or written
    if is_shard_source(cfg.data.train):
        return _train_from_shards(cfg, out, resuming, card_data=card_data, licence=licence, resume=resume)
    index = read_labelled(cfg.data.train, AUDIO_EXTENSIONS, "audio", "speaker", "speaker")
    train_index, calib_utts = split_calibration_index(index, cfg.data.calib_speakers, seed=cfg.train.seed)
    root = Path(cfg.data.train).parent if Path(cfg.data.train).is_file() else Path(cfg.data.train)
    del index
    seed_everything(cfg.train.seed)
    model = build_model(cfg)  # before any file is written: a bad name leaves nothing behind
    store = Waves.from_index if use_memory(cfg.data.in_memory, len(train_index)) else LazyWaves
    waves = store(train_index, cfg.data.min_seconds, cfg.data.skip_bad, cfg.data.max_utterance_seconds)
    augment = None
    if cfg.data.noise_prob > 0 or cfg.data.speed_prob > 0:
        augment = make_augment(cfg.data.noise_prob, cfg.data.snr_db, cfg.data.speed_prob, waves)

    if len(waves.speakers) < 2:
        raise FacevoxError(f"training needs at least 2 speakers, found {len(waves.speakers)}", cfg.data.train)
    if cfg.model.kind == "embedding":
        head = _make_loss(cfg, embed_dim=model.embed_dim, num_classes=len(waves.speakers))
        dataset = CropDataset(waves, int(cfg.data.crop_seconds * SAMPLE_RATE),
                              cfg.data.crops_per_epoch or len(waves), augment, cfg.data.per_speaker)
    else:
        head = _make_loss(cfg)
        dataset = PairDataset(waves, cfg.pair.crop_samples, cfg.pair.pairs_per_epoch, cfg.pair.target_fraction,
                              augment)
    if cfg.model.pretrained != "none" and cfg.loss.imprint and hasattr(head, "weight"):
        imprint_class_weights(head, model, waves)
    dataset = Defence(cfg.defence).dataset(dataset, cfg.train.seed)
    return _fit(cfg, out, model, head, dataset, resuming, resume=resume, n_utts=len(waves),
                speakers=len(waves.speakers), seconds=waves.seconds(),
                skipped=[f"{p}: {why}" for p, why in waves.skipped],
                calib=Corpus(root, calib_utts) if calib_utts else None, card_data=card_data, licence=licence)


def _train_from_shards(cfg: SpeakerConfig, out: Path, resuming: bool, **kw: Any) -> dict[str, Any]:
    """Embedding training streamed from shards (facevox data shard): one crop per item and epoch."""
    from facevox.datasets.shards import read_shards
    from facevox.datasets.stream import BatchStream, iter_records

    d = cfg.data
    shards = read_shards(d.train)
    shards.check_task("speaker", "data.train")
    unsupported = [(cfg.model.kind != "embedding", "model.kind", "pair and siamese models draw random pairs"),
                   (d.per_speaker > 1, "data.per_speaker", "class-balanced items draw utterances by speaker"),
                   (d.crops_per_epoch > 0, "data.crops_per_epoch", "an epoch is one pass over the shards"),
                   (d.calib_speakers > 0, "data.calib_speakers", "held-out speakers need their files"),
                   (cfg.model.pretrained != "none" and cfg.loss.imprint, "loss.imprint",
                    "imprinting embeds every utterance first"),
                   (cfg.defence.kind == "neighbourhood", "defence.kind", "the neighbourhood perturbs indexed items")]
    for bad, key, why in unsupported:
        if bad:
            raise FacevoxError(f"not available when training from shards ({why}); train from the corpus folder "
                               "or manifest (decoded lazily), or change this setting", key)
    shortest = min((s.get("shortest", math.inf) for s in shards.info["shards"]), default=math.inf)
    if shortest < d.min_seconds - 1e-9:
        raise FacevoxError(f"the shards hold utterances of {shortest:.2f} s, shorter than data.min_seconds "
                           f"{d.min_seconds:g}; write them with facevox data shard --min-seconds {d.min_seconds:g} "
                           "or lower data.min_seconds", "data.min_seconds")
    seed_everything(cfg.train.seed)
    model = build_model(cfg)
    record = SpeakerRecord(int(d.crop_seconds * SAMPLE_RATE), None, d.max_utterance_seconds)
    if d.noise_prob > 0 or d.speed_prob > 0:
        bank = []
        for data, meta in iter_records(shards):
            bank.append(record.wave16(data, meta).astype(np.float32) / 32767.0)
            if len(bank) >= 32:
                break
        record.augment = make_augment(d.noise_prob, d.snr_db, d.speed_prob, bank=bank)
    if len(shards.classes) < 2:
        raise FacevoxError(f"training needs at least 2 speakers, found {len(shards.classes)}", d.train)
    head = _make_loss(cfg, embed_dim=model.embed_dim, num_classes=len(shards.classes))
    stream = BatchStream(shards, record, skip_bad=d.skip_bad)
    seconds = float(sum(s.get("seconds", 0.0) for s in shards.info["shards"])) or float("nan")
    return _fit(cfg, out, model, head, stream, resuming, n_utts=len(stream), speakers=len(shards.classes),
                seconds=seconds, skipped=list(shards.info.get("skipped", [])), calib=None, **kw)


def _fit(cfg: SpeakerConfig, out: Path, model: nn.Module, head: nn.Module, dataset: Any, resuming: bool, *,
         resume: bool, n_utts: int, speakers: int, seconds: float, skipped: list[str], calib: Corpus | None,
         card_data: str | None, licence: str) -> dict[str, Any]:
    l2sp = L2SP(model.backbone, cfg.loss.l2sp) if cfg.loss.l2sp > 0 else None
    both = nn.ModuleDict({"model": model, "head": head})
    kind = cfg.model.kind

    def compute_loss(m: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        if kind == "embedding":
            if x.dim() == 3:  # class-balanced items: (B, k, L) crops, (B, k) labels
                x, y = x.flatten(0, 1), y.flatten()
            emb = m["model"](x)
            loss = m["head"](emb, y)
            with torch.no_grad():
                acc = (m["head"].logits(emb.float()).argmax(1) == y).float().mean()
        elif kind == "pair":
            logit = m["model"](x).float()
            loss = m["head"](logit, y)
            acc = ((logit > 0).float() == y).float().mean()
        else:
            ea, eb = m["model"](x[:, 0]), m["model"](x[:, 1])
            loss = m["head"](ea.float(), eb.float(), y)
            with torch.no_grad():
                cos = torch.nn.functional.cosine_similarity(ea.float(), eb.float())
                acc = ((cos > 0.5).float() == y).float().mean()
        logs = {"acc": acc}
        if l2sp is not None:
            logs["l2sp"] = l2sp()
            loss = loss + logs["l2sp"]
        logs["loss"] = loss
        return logs

    defence = Defence(cfg.defence)
    start_run(out, cfg, resuming=resuming)
    trainer = Trainer(both, defence.loss(compute_loss), dataset, cfg.train, out / "train")
    trainer.step_hooks.extend(_step_hooks(head, cfg, trainer.batches_per_epoch, trainer.total_steps))
    print(f"speaker: training {cfg.model.kind} model ({cfg.model.backbone}, {cfg.loss.name}) on "
          f"{n_utts} utterances of {speakers} speakers ({seconds / 60:.1f} min of audio){defence.describe()}")
    trainer.fit(resume=resume)
    train_seconds = trainer.seconds  # summed over resumed runs

    metrics: dict[str, Any] = {"held_out": "none (hold out speakers with data.calib_speakers=N to measure)"}
    if calib is not None and kind != "pair":
        calib, metrics = _calibrate(model, calib, cfg)
        metrics["calibration_trials"] = calib.n_target + calib.n_nontarget
    else:
        calib = None
    spec = SpeakerSpec(kind=cfg.model.kind, window_seconds=cfg.scoring.window_seconds,
                       max_seconds=cfg.scoring.max_seconds, crop_samples=cfg.pair.crop_samples, calibration=calib)
    extra: dict[str, Any] = {**spec.to_extra(), "target_far": cfg.scoring.target_far,
                             "train_seconds": train_seconds, "train_speakers": speakers,
                             "train_utterances": n_utts, "skipped_files": skipped,
                             "defence": defence.record()}
    folder = save_model(
        out / "model", model, config=cfg, metrics=metrics, extra=extra,
        card=ModelCard(task=f"speaker verification ({cfg.model.kind} model)",
                       data=card_data or f"{cfg.data.train}: {speakers} speakers, {n_utts} utterances",
                       licence=licence),
    )
    return {"model": folder, "train_seconds": train_seconds, "extra": extra}


def _calibrate(model: nn.Module, corpus: Corpus, cfg: SpeakerConfig) -> tuple[Calibration, dict[str, Any]]:
    """Calibration and the target-FAR threshold on all pairs of the held-out speakers' utterances, and
    what the model scored on them (the folder's metrics.json)."""
    embed = WaveEmbedder(model, window_seconds=cfg.scoring.window_seconds, max_seconds=cfg.scoring.max_seconds)
    paths = [u.path for u in corpus.utterances]
    emb = embed_files(paths, embed, progress=False, min_seconds=cfg.data.min_seconds)  # short clips: tiled
    emb, owners = np.stack([emb[Path(p)] for p in paths]), [u.speaker for u in corpus.utterances]
    calib = calibrate_held_out(emb, owners, cfg.scoring.target_far)
    return calib, held_out_metrics(emb, owners, calib)
