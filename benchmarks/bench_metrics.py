"""Speed of EER + minDCF(p_target=0.01) in facevox.metrics against the usual scikit-learn recipe.

    python benchmarks/bench_metrics.py [--n 10000000] [--repeat 3] [--json results.json]

Synthetic trials: a fraction ``--targets`` of targets with scores N(2, 1), non-targets N(0, 1).
facevox calls ``eer`` and ``min_dcf`` separately (each builds its own sorted curve); "the scikit-learn
way" calls ``sklearn.metrics.roc_curve`` once and reads both numbers off that curve (EER at
``nanargmin(|fnr - fpr|)``, minDCF as the minimum over the curve).  Timings are the best of
``--repeat`` runs; the time of ``verification_metrics`` (every verification metric from one
curve) is printed too.  The two EERs and minDCFs must agree to 1e-4 (or to one step of the curve,
1 / number of targets, when that is larger: the scikit-learn recipe does not interpolate), otherwise
the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import sklearn
from sklearn.metrics import roc_curve

from facevox import metrics
from facevox.fileio import atomic_write_json

P_TARGET = 0.01
TOLERANCE = 1e-4


def facevox_way(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    eer, _ = metrics.eer(scores, labels)
    dcf, _ = metrics.min_dcf(scores, labels, p_target=P_TARGET)
    return eer, dcf


def sklearn_way(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = np.nanargmin(np.abs(fnr - fpr))
    eer = (fpr[i] + fnr[i]) / 2
    dcf = P_TARGET * fnr + (1 - P_TARGET) * fpr
    return float(eer), float(dcf.min() / min(P_TARGET, 1 - P_TARGET))


def best_time(fn: Callable[[], tuple[float, float]], repeat: int) -> tuple[float, tuple[float, float]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def machine() -> str:
    cpu = platform.processor()
    if not cpu or cpu == platform.machine():  # Linux leaves processor() empty: ask /proc/cpuinfo
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        except OSError:
            cpu = ""
        cpu = cpu or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="number of trials")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (best is kept)")
    parser.add_argument("--targets", type=float, default=0.1, help="fraction of target trials")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 2 or args.repeat < 1 or not 0 < args.targets < 1:
        parser.error("need --n >= 2, --repeat >= 1 and 0 < --targets < 1")

    rng = np.random.default_rng(args.seed)
    labels = rng.random(args.n) < args.targets
    scores = rng.normal(size=args.n) + 2.0 * labels

    fv_time, (fv_eer, fv_dcf) = best_time(lambda: facevox_way(scores, labels), args.repeat)
    sk_time, (sk_eer, sk_dcf) = best_time(lambda: sklearn_way(scores, labels), args.repeat)
    all_time, _ = best_time(lambda: metrics.verification_metrics(scores, labels), args.repeat)
    tolerance = max(TOLERANCE, 1 / max(int(labels.sum()), 1))
    agree = abs(fv_eer - sk_eer) <= tolerance and abs(fv_dcf - sk_dcf) <= tolerance

    print(f"EER + minDCF(p_target={P_TARGET}) on {args.n:,} trials ({args.targets:.0%} targets), best of {args.repeat}")
    print(f"machine: {machine()}; numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    print()
    print("| N | facevox (s) | scikit-learn roc_curve (s) | speed-up |")
    print("|---:|---:|---:|---:|")
    print(f"| {args.n:,} | {fv_time:.2f} | {sk_time:.2f} | {sk_time / fv_time:.1f}x |")
    print()
    print(f"facevox verification_metrics (every metric above and more, one curve): {all_time:.2f} s")
    print(f"EER    facevox {fv_eer:.6f}  scikit-learn {sk_eer:.6f}  |diff| {abs(fv_eer - sk_eer):.1e}")
    print(f"minDCF facevox {fv_dcf:.6f}  scikit-learn {sk_dcf:.6f}  |diff| {abs(fv_dcf - sk_dcf):.1e}")
    print(f"agree to {tolerance:.0e}: " + ("yes" if agree else "NO"))

    if args.json:
        atomic_write_json(
            args.json,
            {
                "n": args.n,
                "target_fraction": args.targets,
                "repeat": args.repeat,
                "p_target": P_TARGET,
                "facevox_seconds": fv_time,
                "sklearn_seconds": sk_time,
                "facevox_verification_metrics_seconds": all_time,
                "speedup": sk_time / fv_time,
                "facevox": {"eer": fv_eer, "min_dcf": fv_dcf},
                "sklearn": {"eer": sk_eer, "min_dcf": sk_dcf},
                "tolerance": tolerance,
                "agree": agree,
                "machine": machine(),
                "numpy": np.__version__,
                "sklearn_version": sklearn.__version__,
            },
        )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
