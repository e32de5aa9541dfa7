"""Scoring at scale from an embedding store: time and peak RSS for 1M and 10M trials, with and
without AS-norm, on random unit embeddings written to a store by this script.

    python benchmarks/bench_scoring.py                      # VoxCeleb1-H-like: 145k files, 6k cohort, D=256
    python benchmarks/bench_scoring.py --files 1000000      # also times opening a 1M x 256 store

Each configuration runs in its own process, so its peak RSS (``ru_maxrss``) is its own. A run
opens the store, looks up the trial files (keys given, so no file system stats), gathers their
embeddings, scores the trials (random index pairs) in chunks and, with AS-norm, computes the
cohort statistics once per file. Trial lists are generated as index pairs: parsing a 10M-line
text file is not what is measured here.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facevox.verification import EmbeddingStore, as_norm_pairs, cohort_stats, cosine_pairs

FINGERPRINT = "bench"


def keys(n: int) -> np.ndarray:
    return np.char.encode(np.char.add("/bench/", np.char.zfill(np.arange(n).astype(str), 9)), "utf-8")


def write_store(path: Path, n: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    store = EmbeddingStore.open(path, FINGERPRINT)
    with store.new_part(keys(n), np.ones((n, 2), np.int64)) as w:
        w.put(0, np.zeros(dim, np.float32))
        for s in range(0, n, 65536):
            e = rng.standard_normal((min(65536, n - s), dim)).astype(np.float32)
            w.emb[s : s + len(e)] = e / np.linalg.norm(e, axis=1, keepdims=True)
        w.done[:] = True
    store.commit()


def one(store_path: Path, n_files: int, trials: int, cohort: int, top_k: int, asnorm: bool) -> dict:
    rng = np.random.default_rng(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the interpreter with numpy and torch
    t0 = time.perf_counter()
    store = EmbeddingStore.open(store_path, FINGERPRINT)
    k = keys(n_files)
    rows = store.lookup([], keys=k, stamps=np.ones((n_files, 2), np.int64))
    opened = time.perf_counter() - t0
    emb = store.take(rows)
    ia, ib = rng.integers(0, n_files, trials), rng.integers(0, n_files, trials)
    scores = cosine_pairs(emb, ia, ib)
    if asnorm:
        c = rng.standard_normal((cohort, emb.shape[1])).astype(np.float32)
        mu, sd = cohort_stats(emb, c, top_k)
        scores = as_norm_pairs(scores, ia, ib, mu, sd)
    seconds = time.perf_counter() - t0
    assert np.isfinite(scores).all()
    return {"trials": trials, "asnorm": asnorm, "seconds": seconds, "open_and_lookup_seconds": opened,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_at_start_mb": base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=145_000, help="embeddings in the store (files of the trial list)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--trials", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--cohort", type=int, default=6000)
    p.add_argument("--top-k", type=int, default=300)
    p.add_argument("--store", type=Path, help="store folder to use (default: a temporary one)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--one", nargs=2, metavar=("TRIALS", "ASNORM"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.store, args.files, int(args.one[0]), args.cohort, args.top_k, args.one[1] == "1")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "store"
        if not (store / "meta.json").is_file():
            t0 = time.perf_counter()
            write_store(store, args.files, args.dim)
            print(f"wrote a store of {args.files} x {args.dim} float32 in {time.perf_counter() - t0:.1f} s")
        results = []
        for trials in args.trials:
            for asnorm in (False, True):
                cmd = [sys.executable, __file__, "--store", str(store), "--files", str(args.files),
                       "--cohort", str(args.cohort), "--top-k", str(args.top_k), "--one", str(trials), str(int(asnorm))]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"store: {args.files} files x {args.dim}; cohort {args.cohort}, top {args.top_k}")
    print("| trials | AS-norm | seconds | of which open + lookup | peak RSS (MB) | RSS before scoring (MB) |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['trials']:,} | {'yes' if r['asnorm'] else 'no'} | {r['seconds']:.2f} | "
              f"{r['open_and_lookup_seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['rss_at_start_mb']:.0f} |")
    if args.out:
        args.out.write_text(json.dumps({"files": args.files, "dim": args.dim, "results": results}, indent=2))


if __name__ == "__main__":
    main()
