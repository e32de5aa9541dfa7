"""The one-GPU check of the streamed training path (run by benchmarks/gpu_check.sh; under 8 minutes on
one GPU with 16 CPU cores).

    python benchmarks/gpu_check.py --work /tmp/gpu-check            # what gpu_check.sh runs (CUDA, bf16)
    python benchmarks/gpu_check.py --work /tmp/gpu-check --device cpu --tiny   # the same path, tiny, on a CPU

1. Generates two corpora on disk: GAN-face-like images in ``real/`` and ``fake/`` (JPEG, 256 px)
   and speaker clips (FLAC, 3 s, a folder per speaker).
2. Writes tar shards of both with ``facevox data shard`` (falls back to
   ``facevox.datasets.shards.write_shards`` where the command is not there, and says so).
3. For the fakeface ResNet-50 (BCE, 224 px random crops) and the speaker ECAPA-TDNN (cross
   entropy over the speakers, 2 s random crops), read from the shards through
   ``facevox.datasets.stream.BatchStream``:
   - the data loader alone: items/s of the stream's DataLoader with ``--workers`` workers;
   - the Trainer against a raw PyTorch loop on the same batches (the same stream, seed and epochs),
     bf16 autocast, alternating rounds: images/s and utterances/s, the ratio, peak GPU memory
     (``torch.cuda.max_memory_allocated``) of each.
4. ``facevox fakeface train`` and ``facevox speaker train`` on the shard lists for a few steps:
   the command a user runs (``--no-cli`` skips it).

Exits 1 when a stage fails (after printing what it measured), 2 without CUDA on ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_trainer import loop_table, make_model, trainer_vs_raw  # noqa: E402

SR = 16000


@dataclass
class Plan:
    """Sizes of one check: the full one for a GPU, a tiny one for a CPU."""

    images: int = 14400  # 72 shards of 200: 6 per reader with 12 workers, 108 batches of 128 an epoch
    image_px: int = 256
    crop_px: int = 224
    image_shard: int = 200
    speakers: int = 200
    clips_per_speaker: int = 24  # 4,800 clips: 48 shards of 100
    clip_seconds: float = 3.0
    crop_seconds: float = 2.0
    audio_shard: int = 100
    batch: int = 128
    workers: int = 12
    warmup: int = 20
    steps: int = 100  # timed steps per round and loop; 2 rounds x 2 loops x 121 steps per model
    rounds: int = 2
    resnet_width: int = 64
    ecapa_channels: int = 512
    cli_steps: int = 30


TINY = Plan(images=48, image_px=40, crop_px=32, image_shard=6, speakers=4, clips_per_speaker=8, clip_seconds=1.2,
            crop_seconds=1.0, audio_shard=4, batch=4, workers=2, warmup=1, steps=3, rounds=2, resnet_width=8,
            ecapa_channels=16, cli_steps=2)


# --------------------------------------------------------------------------------------------- corpora


def _image(args: tuple[Path, int, int]) -> None:
    from PIL import Image

    path, seed, px = args
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (px // 16 + 2, px // 16 + 2, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((px, px), Image.BICUBIC), dtype=np.float32)
    if "fake" in path.parts[-2]:  # a periodic up-sampling trace, as GAN images have
        img[::2, ::2] += 12.0
    img += rng.normal(0, 4, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=92)


def _clip(args: tuple[Path, int, float, float]) -> None:
    import soundfile as sf

    path, seed, f0, seconds = args
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 6))
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)) + 0.02 * rng.standard_normal(t.shape)
    sf.write(path, wave.astype(np.float32), SR, format="FLAC")


def make_corpora(work: Path, plan: Plan, procs: int) -> tuple[Path, Path]:
    faces, voices = work / "faces", work / "voices"
    jobs_img, jobs_wav = [], []
    for cls in ("real", "fake"):
        (faces / cls).mkdir(parents=True, exist_ok=True)
        jobs_img += [(faces / cls / f"{i:06d}.jpg", i * 2 + (cls == "fake"), plan.image_px)
                     for i in range(plan.images // 2)]
    rng = np.random.default_rng(1)
    for s in range(plan.speakers):
        (voices / f"spk{s:04d}").mkdir(parents=True, exist_ok=True)
        f0 = float(rng.uniform(90, 260))
        jobs_wav += [(voices / f"spk{s:04d}" / f"{c:03d}.flac", s * 1000 + c, f0 * rng.uniform(0.97, 1.03),
                      plan.clip_seconds) for c in range(plan.clips_per_speaker)]
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(_image, jobs_img, chunksize=64))
        list(pool.map(_clip, jobs_wav, chunksize=64))
    return faces, voices


def write_shards(source: Path, out: Path, per_shard: int, procs: int, task: str) -> str:
    """Shards of ``source`` in ``out`` with ``facevox data shard``; returns how they were written."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "facevox", "data", "shard", str(source), "--out", str(out),
           "--per-shard", str(per_shard), "--task", task, "--workers", str(procs)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return "facevox data shard"
    if "invalid choice" not in done.stderr and "unrecognized arguments" not in done.stderr:
        raise RuntimeError(f"facevox data shard failed: {done.stderr.strip()[-600:]}")
    from facevox.datasets.shards import source_items
    from facevox.datasets.shards import write_shards as write

    write(source_items(source, task), out, per_shard=per_shard, workers=procs)
    return "facevox.datasets.shards.write_shards (the data shard command was not there: " + \
        done.stderr.strip().splitlines()[-1][:120] + ")"


# --------------------------------------------------------------------------------------------- records


def _decode(data: bytes, meta: dict[str, Any], load: Any) -> Any:
    from facevox.datasets.decode import decode_bytes

    suffix = Path(str(meta.get("path", ""))).suffix or ".bin"
    return decode_bytes(data, suffix, str(meta.get("path", "?")), load)


class ImageRecord:
    """Shard item -> (uint8 CHW random crop, flipped half the time; real/fake label as float)."""

    def __init__(self, crop: int, fake_index: int) -> None:
        self.crop, self.fake_index = crop, fake_index

    def __call__(self, data: bytes, meta: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        from facevox.image.io import load_image

        img = _decode(data, meta, load_image)
        h, w = img.shape[:2]
        y0, x0 = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        img = img[y0 : y0 + self.crop, x0 : x0 + self.crop]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        label = float(int(meta["label_index"]) == self.fake_index)
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1), label


class AudioRecord:
    """Shard item -> (float32 random crop of ``samples``, speaker index)."""

    def __init__(self, samples: int) -> None:
        self.samples = samples

    def __call__(self, data: bytes, meta: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        from facevox.audio.io import load_audio

        wave = _decode(data, meta, load_audio)
        if len(wave) < self.samples:
            wave = np.pad(wave, (0, self.samples - len(wave)), mode="wrap")
        start = int(rng.integers(0, len(wave) - self.samples + 1))
        return torch.from_numpy(np.ascontiguousarray(wave[start : start + self.samples])), int(meta["label_index"])


def image_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    x = x.float().div_(255).contiguous(memory_format=torch.channels_last)  # uint8 over the bus, float on the GPU
    return F.binary_cross_entropy_with_logits(model(x).float()[:, 0], y.float())


def speaker_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x).float(), y)


# --------------------------------------------------------------------------------------------- measuring


def stream_epochs(stream: Any, cfg: Any, pin: bool) -> Any:
    """The batches the Trainer sees (epoch 0, 1, ... of the stream with its seed), for the raw loop."""
    for epoch in count():
        it = stream.iterable(seed=cfg.seed, epoch=epoch, start=0, batch_size=cfg.batch_size, rank=0, world=1,
                             num_workers=cfg.num_workers, drop_last=True)
        kw = {"prefetch_factor": cfg.prefetch_factor} if cfg.num_workers else {}
        yield from DataLoader(it, batch_size=None, num_workers=cfg.num_workers, pin_memory=pin, **kw)


def loader_alone(stream: Any, cfg: Any, pin: bool, batches: int) -> float:
    """Items/s of the stream's DataLoader alone (workers started before the clock, first batch excluded)."""
    it = iter(stream_epochs(stream, cfg, pin))
    n, first = 0, next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        n += len(next(it)[1])
    del first
    return n / (time.perf_counter() - t0)


def check_model(name: str, stream: Any, model: nn.Module, loss: Any, plan: Plan, args: argparse.Namespace) -> dict:
    from facevox.config import TrainConfig

    device = torch.device(args.device)
    pin = device.type == "cuda"
    cfg = TrainConfig(batch_size=plan.batch, lr=1e-4, precision=args.precision, device=args.device, progress=False,
                      num_workers=plan.workers, prefetch_factor=4, log_every=50, ckpt_every=10_000, seed=0)
    per_epoch = stream.batches_per_epoch(plan.batch, 1, plan.workers, True)
    items = loader_alone(stream, cfg, pin, min(2 * per_epoch, plan.warmup + plan.steps))
    res = trainer_vs_raw(model, loss, stream, lambda: stream_epochs(stream, cfg, pin), cfg, warmup=plan.warmup,
                         steps=plan.steps, rounds=plan.rounds, batch_items=plan.batch)
    res["loader_items_per_s"] = items
    res["batches_per_epoch"] = per_epoch
    return res


def run_cli(task: str, shards: Path, out: Path, plan: Plan, args: argparse.Namespace, extra: list[str]) -> str:
    settings = [f"train.max_steps={plan.cli_steps}", f"train.device={args.device}", f"train.precision={args.precision}",
                f"train.num_workers={plan.workers}", f"train.batch_size={plan.batch}", "train.progress=false", *extra]
    cmd = [sys.executable, "-m", "facevox", task, "train", "--data", str(shards / "shard.list"), "--out", str(out)]
    cmd += [a for s in settings for a in ("--set", s)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cli_timeout)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"facevox {task} train failed (status {done.returncode}): {last[:300]}")
    return f"ok in {took:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for corpora, shards and runs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None, help="default: bf16 (fp32 with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="tiny corpora and models: checks the script on a CPU")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="processes for corpora and shards")
    parser.add_argument("--no-cli", dest="cli", action="store_false", help="skip the facevox train commands")
    parser.add_argument("--cli-timeout", type=int, default=150)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    plan = TINY if args.tiny else Plan()
    args.precision = args.precision or ("fp32" if args.tiny else "bf16")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: error: --device cuda but torch sees no CUDA device (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none"
    print(f"<!-- gpu_check: {gpu}; torch {torch.__version__}; {os.cpu_count()} CPU cores; "
          f"{time.strftime('%Y-%m-%d')} -->\n")
    report: dict[str, Any] = {"gpu": gpu, "plan": vars(plan), "args": {k: str(v) for k, v in vars(args).items()}}
    failures: list[str] = []

    t0 = time.perf_counter()
    faces, voices = make_corpora(args.work, plan, args.procs)
    print(f"corpora: {plan.images} images, {plan.speakers * plan.clips_per_speaker} clips "
          f"({time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    how = write_shards(faces, args.work / "face_shards", plan.image_shard, args.procs, "fakeface")
    write_shards(voices, args.work / "voice_shards", plan.audio_shard, args.procs, "speaker")
    print(f"shards: {how} ({time.perf_counter() - t0:.0f} s)\n")

    from facevox.datasets.shards import read_shards
    from facevox.datasets.stream import BatchStream

    face_set, voice_set = read_shards(args.work / "face_shards"), read_shards(args.work / "voice_shards")
    face_stream = BatchStream(face_set, ImageRecord(plan.crop_px, face_set.classes.index("fake")))
    voice_stream = BatchStream(voice_set, AudioRecord(int(plan.crop_seconds * SR)))

    rows = []
    for name, stream, model, loss, unit, shape in (
        ("fakeface ResNet-50", face_stream, lambda: make_model("resnet50", 1, plan.resnet_width), image_loss, "images",
         f"{plan.crop_px} px crops"),
        ("speaker ECAPA-TDNN", voice_stream, lambda: make_model("ecapa", len(voice_set.classes), plan.ecapa_channels),
         speaker_loss, "utterances", f"{plan.crop_seconds:g} s crops"),
    ):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        try:
            res = check_model(name, stream, model(), loss, plan, args)
        except Exception as err:  # report and go on: the other model's figures still count
            failures.append(f"{name}: {type(err).__name__}: {err}")
            print(f"{name}: FAILED: {type(err).__name__}: {err}\n", file=sys.stderr)
            continue
        report[name] = res
        rows.append((name, unit, res))
        title = (f"{name}: batch {plan.batch} x {shape}, {args.precision}, {args.device}, {plan.workers} workers, "
                 f"{res['batches_per_epoch']} batches an epoch")
        print(loop_table(title, res, unit))
        print(f"\ndata loader alone: {res['loader_items_per_s']:.0f} {unit}/s "
              f"({time.perf_counter() - t0:.0f} s for this model)\n")

    if rows:
        print("### Summary\n")
        print("| model | loader alone (items/s) | raw loop (items/s) | Trainer (items/s) | Trainer / raw | "
              "peak GPU memory (Trainer) |")
        print("|---|---|---|---|---|---|")
        for name, unit, r in rows:
            print(f"| {name} | {r['loader_items_per_s']:.0f} {unit} | {r['raw']['items_per_s']:.0f} | "
                  f"{r['trainer']['items_per_s']:.0f} | {r['ratio']:.3f} | "
                  f"{r['trainer']['peak_gpu_bytes'] / 2**30:.2f} GiB |")
        print()

    if args.cli:
        runs = (("fakeface", args.work / "face_shards", [f"data.crop_size={plan.crop_px}",
                                                         f"data.load_size={plan.image_px}"]),
                ("speaker", args.work / "voice_shards", [f"data.crop_seconds={plan.crop_seconds}",
                                                         "data.min_seconds=0"]))
        for task, shards, extra in runs:
            try:
                status = run_cli(task, shards, args.work / f"run_{task}", plan, args, extra)
                print(f"facevox {task} train on shards: {status}")
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                failures.append(str(err))
                print(f"facevox {task} train on shards: FAILED: {err}", file=sys.stderr)

    total = time.perf_counter() - t_start
    print(f"\ngpu_check: {total:.0f} s in all" + (f"; {len(failures)} stage(s) failed" if failures else "; all ok"))
    if args.json:
        report["failures"], report["seconds"] = failures, total
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
