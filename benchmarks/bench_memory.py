"""Peak memory of ``speaker train`` and ``fakeface train`` against corpus size: lazy decoding vs in RAM.

    python benchmarks/bench_memory.py                          # 1k, 10k and 100k files, lazy and in RAM
    python benchmarks/bench_memory.py --sizes 1000 --steps 10  # a quick check that it works
    python benchmarks/bench_memory.py --modes lazy,ram,shards --ram-max 10000

Generates corpora on disk once (cached under ``--work``, default /tmp/facevox-bench-memory):
speaker corpora of short 16 kHz WAV clips (0.5 to 1 s, 50 per speaker) and fakeface corpora of
64 px JPEG images (real/ and fake/). Then runs each ``facevox ... train`` as a subprocess with
``train.num_workers=2`` for ``--steps`` optimiser steps on a small model (x-vector with 32
channels; ResNet-18 at 64 px) and samples, every 50 ms, the resident memory (RSS) of the whole
process tree: the main process plus its DataLoader workers, as PSS (shared pages split among the
processes that share them: what the tree really holds) and as summed RSS (shared pages counted
once per process), read from ``/proc``. Modes: ``lazy`` (``data.in_memory=false``: only the file index is held,
items decoded in the workers), ``ram`` (``data.in_memory=true``: the corpus decoded into RAM
first; run only up to ``--ram-max`` files), ``shards`` (``facevox data shard`` first, not timed,
then training streams the shards). The table gives the peaks and the wall time of the run (index,
checks, training and, for fakeface, scoring the val split and, except from shards, the test split:
those passes start DataLoader workers of their own, which the summed RSS shows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SR = 16000


def write_speaker_corpus(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` clips of 0.5 to 1 s, 50 per speaker (16-bit WAV); cached: a ``.complete`` marker ends a full write."""
    import soundfile as sf

    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(seed)
    per = 50
    t = np.arange(SR) / SR
    for i in range(n):
        spk = i // per
        folder = root / f"spk{spk:05d}"
        if i % per == 0:
            folder.mkdir(parents=True, exist_ok=True)
        length = int(rng.integers(SR // 2, SR))
        f0 = 100 + (spk * 37) % 200
        wave = 0.3 * np.sin(2 * np.pi * f0 * t[:length]) + 0.05 * rng.standard_normal(length)
        sf.write(folder / f"u{i % per:02d}.wav", wave.astype(np.float32), SR, subtype="PCM_16")
    (root / ".complete").write_text(f"{n}\n")
    return root


def write_image_corpus(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` 64 px JPEG images, half in real/, half in fake/ (smooth noise; fakes with a periodic pattern)."""
    from PIL import Image

    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64]
    grid = (np.sin(xx * 1.6) * np.sin(yy * 1.6) * 20)[..., None]
    for i in range(n):
        label = ("real", "fake")[i % 2]
        folder = root / label / f"{(i // 2) // 1000:04d}"
        if (i // 2) % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(60, 200, (8, 8, 3)).astype(np.float64)
        img = np.kron(base, np.ones((8, 8, 1))) + rng.normal(0, 8, (64, 64, 3)) + (grid if label == "fake" else 0)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    (root / ".complete").write_text(f"{n}\n")
    return root


def _status_kb(pid: int, field: str, name: str = "status") -> int:
    """A ``Field:  N kB`` line of /proc/<pid>/<name> (status, smaps_rollup), in kB; 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _tree_memory(pid: int) -> tuple[int, int, int]:
    """(summed RSS, summed PSS of pid and its descendants, RSS of pid) in bytes.

    PSS (proportional set size, /proc/<pid>/smaps_rollup) counts a page shared by k processes as
    1/k in each, so the sum is what the tree really holds; summed RSS counts the torch libraries
    and the copy-on-write pages every forked worker shares once per process.
    """
    procs = _descendants(pid)
    rss = sum(_status_kb(p, "VmRSS") for p in procs)
    pss = sum(_status_kb(p, "Pss", "smaps_rollup") for p in procs)
    return rss * 1024, pss * 1024, _status_kb(pid, "VmRSS") * 1024


def run_measured(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cmd``; peak tree RSS and main RSS (MB) sampled every 50 ms, and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = {"tree": 0, "pss": 0, "main": 0}

    def sample() -> None:
        while proc.poll() is None:
            for key, value in zip(("tree", "pss", "main"), _tree_memory(proc.pid), strict=True):
                peak[key] = max(peak[key], value)
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    thread.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return {"peak_tree_mb": peak["tree"] / 2**20, "peak_pss_mb": peak["pss"] / 2**20,
            "peak_main_mb": peak["main"] / 2**20, "wall_s": wall}


def sets(pairs: dict[str, str]) -> list[str]:
    return [a for k, v in pairs.items() for a in ("--set", f"{k}={v}")]


def train_command(task: str, data: Path, out: Path, mode: str, steps: int, workers: int) -> list[str]:
    common = {"train.max_steps": str(steps), "train.epochs": "1000", "train.num_workers": str(workers),
              "train.precision": "fp32", "train.progress": "false", "train.ckpt_every": str(10**6),
              "train.batch_size": "32"}
    if mode != "shards":
        common["data.in_memory"] = "true" if mode == "ram" else "false"
    if task == "speaker":
        extra = {"model.backbone": "xvector", "model.backbone_kwargs": "{channels: 32, embed_dim: 16}",
                 "data.crop_seconds": "0.5", "data.min_seconds": "0.3"}
        return [sys.executable, "-m", "facevox", "speaker", "train", "--data", str(data), "--out", str(out),
                "--restart", *sets({**common, **extra})]
    extra = {"model.name": "resnet18", "data.load_size": "64", "data.crop_size": "56",
             "data.split_fractions": "[0.9, 0.05, 0.05]"}
    return [sys.executable, "-m", "facevox", "fakeface", "train", "--data", str(data), "--out", str(out),
            "--restart", *sets({**common, **extra})]


def shard(task: str, source: Path, out: Path, n: int, env: dict[str, str]) -> Path:
    """Shards of about 1,000 items (fewer for small corpora, so that every worker gets shards of its own)."""
    if (out / "shard.list").is_file():
        return out
    per = min(1000, max(50, n // 8))
    cmd = [sys.executable, "-m", "facevox", "data", "shard", str(source), "--out", str(out), "--task", task,
           "--workers", "2", "--min-seconds", "0.3", "--per-shard", str(per)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/facevox-bench-memory", help="where corpora and runs are kept")
    ap.add_argument("--sizes", default="1000,10000,100000", help="corpus sizes (files), comma-separated")
    ap.add_argument("--tasks", default="speaker,fakeface")
    ap.add_argument("--modes", default="lazy,ram", help="lazy, ram, shards (comma-separated)")
    ap.add_argument("--ram-max", type=int, default=10000, help="in-RAM runs only up to this many files")
    ap.add_argument("--steps", type=int, default=30, help="optimiser steps per run")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (train.num_workers)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    work = Path(args.work)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    rows = []
    for task in args.tasks.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            t0 = time.perf_counter()
            data = (write_speaker_corpus if task == "speaker" else write_image_corpus)(work / f"{task}-{n}", n)
            made = time.perf_counter() - t0
            if made > 1:
                print(f"{task}: wrote {n} files in {made:.0f} s", file=sys.stderr)
            for mode in args.modes.split(","):
                if mode == "ram" and n > args.ram_max:
                    continue
                source = shard(task, data, work / f"{task}-{n}-shards", n, env) if mode == "shards" else data
                res = run_measured(train_command(task, source, work / "runs" / f"{task}-{n}-{mode}", mode,
                                                 args.steps, args.workers), env)
                rows.append({"task": task, "files": n, "mode": mode, **res})
                print(f"{task} {n} {mode}: {res['peak_pss_mb']:.0f} MB PSS tree, {res['peak_tree_mb']:.0f} MB RSS "
                      f"tree, {res['peak_main_mb']:.0f} MB main, {res['wall_s']:.0f} s", file=sys.stderr)
    from common import machine_header

    head = machine_header()
    print(f"\nPeak RSS, {args.steps} steps, {args.workers} workers, batch 32 ({head['machine']}; {head['torch']}; "
          f"{head['date']})\n")
    print("| task | files | data | peak PSS, main + workers (MB) | vs smallest, same data | peak RSS sum (MB) | "
          "peak RSS, main (MB) | wall (s) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        base = next((b for b in rows if b["task"] == r["task"] and b["mode"] == r["mode"]), r)
        print(f"| {r['task']} | {r['files']:,} | {r['mode']} | {r['peak_pss_mb']:.0f} | "
              f"{r['peak_pss_mb'] / base['peak_pss_mb']:.2f}x | {r['peak_tree_mb']:.0f} | {r['peak_main_mb']:.0f} | "
              f"{r['wall_s']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": head, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
