"""GAN inversion on the DCGAN face generator: the README's tables and figure (issue 6).

Three ways to find the latent z from which the 64x64 DCGAN face generator of ``gan-face-generate``
draws a face: Adam on z (optimisation), the seed's ResNet-18 encoder, and the hybrid (the
encoder's z refined by a few Adam steps)::

    python benchmarks/bench_invert.py                        # everything (about 25 min on 2 cores)
    python benchmarks/bench_invert.py --encoder-steps 1000   # a longer encoder training
    python benchmarks/bench_invert.py --features runs/bench-fakeface/resnet18/model   # a trained feature network
    python benchmarks/bench_invert.py --out /tmp/bench-invert-smoke --encoder-steps 3 --n 4 --n-real 4 \\
        --opt-steps 3 --hybrid-steps 2 --figure /tmp/bench-invert-smoke/fig.png              # smoke run

1. The encoder (``src/facevox/recipes/invert/encoder_dcgan.yaml``, bf16 where the CPU has it) is trained into
   ``OUT/encoder/model`` unless it is there. The recipe's 10 epochs of 64,000 z (10,000 steps of
   64) are far beyond a 2-core CPU, so ``--encoder-steps`` sets ``train.max_steps`` (and the
   warm-up is cut to a tenth of it). The default, 800 steps (51,200 z, 0.8 of an epoch), is an
   estimate of 10 minutes on 2 cores: the smoke run measured 1.3 s per step of 64 (median, bf16)
   with one thread on a 2-core AMD EPYC busy with another benchmark; two free cores are taken to
   be about twice as fast, 0.75 s per step (on a busy machine expect about 17 minutes).
   ``--set train.max_steps=N`` wins over ``--encoder-steps``; the steps used are in the results.
2. Generated faces (the seed's table): ``--n`` (50) faces drawn from z ~ N(0, I) with seed 0,
   inverted by optimisation (``--opt-steps``, 200), the encoder and the hybrid
   (``--hybrid-steps``, 50) through ``evaluate_inversion``, the function behind
   ``facevox invert eval`` (its report goes to ``OUT/generated``): PSNR, SSIM, perceptual
   distance and "FD (<network>)" with the named feature network, latent error ||z - z_hat||,
   seconds for all faces and per face; the speed ratio optimisation / encoder, the method with
   the best PSNR, and how that compares with the seed (encoder about 300x faster than
   optimisation, hybrid best in quality).
3. Real faces: the first ``--n-real`` (100; 0 = all 400) photos of
   ``../shared/data/ffhq-vs-stylegan2/real`` (sorted by file name), downscaled to 64x64 and
   inverted by each method: PSNR, SSIM, perceptual distance, FD, and the identity kept -- dlib's
   face descriptors (``FaceScorer(backend="dlib")``) of photo and reconstruction, both enlarged
   from 64x64 to 150x150: mean Euclidean distance and the fraction under dlib's same-person
   threshold 0.6, with another photo of the set as the different-person baseline; with
   ``--face-model`` also the mean cosine similarity of a ``facevox face train`` embedder.
4. The figure ``docs/figures/invert_real.jpg`` (``--figure``): 8 real targets and, one row per
   method, their reconstructions.

The feature network (perceptual loss and FD) is the recipe's untrained ResNet-18 unless
``--features`` names another (a facevox model folder or ``package.module:factory``); every table
names it. A trained encoder is not retrained: to train one with other features or steps, give
another ``--out``. A section measured before with the same settings is reused (``--redo``
measures it again). Results: ``OUT/results.json`` and ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_header

from facevox.config import load_config, parse_override, read_yaml
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_json, atomic_write_text
from facevox.image.io import list_image_files
from facevox.image.transforms import resize_square
from facevox.tasks.invert import evaluate as ev
from facevox.tasks.invert.config import InvertConfig
from facevox.tasks.invert.encoder import train_encoder
from facevox.train import resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "src" / "facevox" / "recipes" / "invert" / "encoder_dcgan.yaml"
DEFAULT_ENCODER_STEPS = 800  # about 10 min on 2 cores with bf16: 0.75 s per step (see the docstring)
DLIB_THRESHOLD = 0.6  # dlib's same-person distance
IDENTITY_SIZE = 150  # dlib's face chip size: the 64x64 images are enlarged to it
N_FIGURE = 8
SHORT = {"optim": "optimisation", "encoder": "the encoder", "hybrid": "the hybrid"}
# the seed's table 2.3 (50 ProGAN faces): PSNR (dB), FID, seconds for all 50
SEED_TABLE = {"optim": (19.06, 30.48, 1135.24), "encoder": (16.3, 31.22, 3.96), "hybrid": (21.96, 16.94, 32.5467)}


# --------------------------------------------------------------------------------------------
# settings


def make_config(args: argparse.Namespace) -> InvertConfig:
    """The recipe, --set overrides, then the options (an option never beats a --set of the same key)."""
    cfg = load_config(InvertConfig, args.recipe, args.set)
    given = {".".join(parse_override(s)[0]) for s in args.set}
    if "train.max_steps" not in given:
        cfg.train.max_steps = args.encoder_steps
    if "train.warmup_steps" not in given and cfg.train.max_steps:
        cfg.train.warmup_steps = min(cfg.train.warmup_steps, cfg.train.max_steps // 10)
    if args.features:
        cfg.features.network = args.features
    if args.opt_steps is not None:
        cfg.optim.steps = args.opt_steps
    if args.hybrid_steps is not None:
        cfg.optim.hybrid_steps = args.hybrid_steps
    if args.device:
        cfg.device = cfg.train.device = args.device
    return cfg


# --------------------------------------------------------------------------------------------
# 1. the encoder


def median_step_seconds(jsonl: Path, batch_size: int) -> float | None:
    """Median wall time of a training step after the first, from the Trainer's log (whose
    samples_per_s counts from the start of each epoch); None with fewer than 2 steps."""
    if not jsonl.is_file():
        return None
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    epoch = rows[-1]["epoch"]
    rows = [r for r in rows if r.get("epoch") == epoch and r.get("samples_per_s")]
    elapsed = [(i + 1) * batch_size / r["samples_per_s"] for i, r in enumerate(rows)]
    steps = np.diff(elapsed)
    return float(np.median(steps)) if len(steps) else None


def encoder_stage(cfg: InvertConfig, out: Path) -> dict:
    """Train the encoder into OUT/model unless it is there; its training steps, time and held-out metrics."""
    model = out / "model"
    if (model / "model.safetensors").is_file():
        print(f"[encoder] already trained: {model}")
    else:
        print(f"[encoder] training {cfg.train.max_steps or 'all'} steps of {cfg.train.batch_size} into {model}",
              flush=True)
        train_encoder(cfg, out)
    extra = json.loads((model / "extra.json").read_text())
    metrics = json.loads((model / "metrics.json").read_text())
    saved = read_yaml(model / "config.yaml")  # the settings it was trained with, not today's
    train, enc = saved["train"], saved["encoder"]
    log = out / "train" / "metrics.jsonl"
    steps = None
    if log.is_file():
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        steps = json.loads(lines[-1])["step"] if lines else None
    if steps is None:
        steps = train["max_steps"] or train["epochs"] * (enc["samples_per_epoch"] // train["batch_size"])
    amp = resolve_precision(train["precision"], resolve_device(train["device"]))
    full = train["epochs"] * (enc["samples_per_epoch"] // train["batch_size"])
    return {"model": str(model), "steps": steps, "batch_size": train["batch_size"],
            "samples": steps * train["batch_size"], "recipe_steps": full,
            "warmup_steps": train["warmup_steps"], "lr": train["lr"],
            "precision": "bf16" if amp == torch.bfloat16 else "fp32",
            "train_seconds": extra["train_seconds"], "seconds_per_step": extra["train_seconds"] / max(1, steps),
            "median_step_seconds": median_step_seconds(log, train["batch_size"]),
            "features": extra.get("features", {}).get("name"),
            "features_network": extra.get("features", {}).get("network"),
            "generator": extra.get("generator_name"),
            **{k: metrics[k] for k in ("heldout_latent_error", "heldout_latent_error_rel", "heldout_pixel_mse")
               if k in metrics}}


# --------------------------------------------------------------------------------------------
# 2. generated faces: the seed's table


def generated_stage(cfg: InvertConfig, args: argparse.Namespace, encoder: dict) -> dict:
    doc = ev.evaluate_inversion(cfg, args.out / "generated", encoder_path=encoder["model"], n=args.n,
                                seed=args.target_seed)
    m = doc["methods"]
    ratio = m["optim"]["seconds"] / max(1e-9, m["encoder"]["seconds"])
    best_psnr = max(m, key=lambda k: m[k]["psnr"])
    best_fd = min(m, key=lambda k: m[k].get("fd", float("inf"))) if all("fd" in v for v in m.values()) else None
    seed_ratio = SEED_TABLE["optim"][2] / SEED_TABLE["encoder"][2]
    net = doc["feature_network"]
    quality = [f"the best PSNR is {SHORT[best_psnr]}'s ({m[best_psnr]['psnr']:.2f} dB)"]
    if best_fd:
        quality.append(f"the lowest FD ({net}) {SHORT[best_fd]}'s ({m[best_fd]['fd']:.4g})")
    hybrid_best = best_psnr == "hybrid" and best_fd in (None, "hybrid")
    verdict = ("holds here" if hybrid_best else
               "holds here for PSNR only" if best_psnr == "hybrid" else
               "holds here for FD only" if best_fd == "hybrid" else "does not hold here")
    sentence = (f"On {args.n} generated faces the encoder inverted {ratio:.0f}x faster than {cfg.optim.steps}-step "
                f"optimisation ({m['encoder']['seconds']:.2f} s against {m['optim']['seconds']:.1f} s on "
                f"{resolve_device(cfg.device)}, the {cfg.optim.hybrid_steps}-step hybrid "
                f"{m['hybrid']['seconds']:.1f} s; "
                f"the seed: {seed_ratio:.0f}x, 3.96 s against 1135 s, hybrid 32.5 s); {' and '.join(quality)}, so the "
                f"seed's finding that the hybrid is best in quality {verdict}.")
    return {"doc": doc, "speed_ratio_optim_over_encoder": ratio, "seed_speed_ratio": seed_ratio,
            "best_psnr": best_psnr, "best_fd": best_fd, "hybrid_best_quality": hybrid_best, "comparison": sentence}


# --------------------------------------------------------------------------------------------
# 3. real faces


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [0, 1] -> N uint8 (H, W, 3) arrays."""
    x = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return list(x)


def identity_kept(targets: torch.Tensor, results: dict, face_model: Path | None) -> dict:
    """Face embeddings of photo and reconstruction (both enlarged to 150x150): dlib distance and,
    with a face model, cosine similarity. Another photo of the set is the different-person baseline."""
    photos = [resize_square(a, IDENTITY_SIZE) for a in to_uint8(targets)]
    recons = {m: [resize_square(a, IDENTITY_SIZE) for a in to_uint8(r.images)] for m, r in results.items()}
    n = len(photos)
    other = [(i + 1) % n for i in range(n)]  # photo i against photo i + 1
    out: dict = {}
    try:
        from facevox.tasks.face.evaluate import FaceScorer

        dlib = FaceScorer(backend="dlib")
    except FacevoxError as err:
        print(f"identity (dlib) skipped: {err}", file=sys.stderr)
        out["dlib_skipped"] = str(err)
    else:
        t0 = time.perf_counter()
        ep = dlib.embed(photos)
        rows = {m: np.linalg.norm(ep - dlib.embed(imgs), axis=1) for m, imgs in recons.items()}
        if n >= 2:
            rows["other photo"] = np.linalg.norm(ep - ep[other], axis=1)
        out["dlib"] = {k: {"distance": float(d.mean()), "same_person_fraction": float((d < DLIB_THRESHOLD).mean())}
                       for k, d in rows.items()}
        out["dlib_name"] = dlib.name
        print(f"[real] dlib identity: {time.perf_counter() - t0:.0f} s", flush=True)
    if face_model:
        from facevox.tasks.face.evaluate import FaceScorer

        scorer = FaceScorer(face_model)
        ep = scorer.embed(photos)
        rows = {m: np.sum(ep * scorer.embed(imgs), axis=1) for m, imgs in recons.items()}
        if n >= 2:
            rows["other photo"] = np.sum(ep * ep[other], axis=1)
        out["face_model"] = {k: {"cosine": float(c.mean())} for k, c in rows.items()}
        out["face_model_name"] = scorer.name
    return out


def real_stage(cfg: InvertConfig, args: argparse.Namespace, encoder: dict) -> dict:
    gen, features, enc = ev.setup(cfg, encoder["model"], need_encoder=True)
    files = list_image_files(args.real)
    if args.n_real:
        files = files[: args.n_real]
    targets, files = ev.load_targets(files, gen.image_size)
    results = {}
    for m in ev.METHODS:
        print(f"[real] {ev.method_label(m, cfg)} on {len(files)} photos", flush=True)
        results[m] = ev.invert(m, gen, targets, cfg, features, enc)
    metrics = {m: ev.inversion_metrics(targets, r, features) for m, r in results.items()}
    for v in metrics.values():
        v.pop("per_image")
    identity = identity_kept(targets, results, args.face_model)
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    ev.comparison_grid(targets, list(results.values()), args.figure, n_show=N_FIGURE,
                       labels=[ev.method_label(m, cfg).split(" (")[0] for m in results])
    print(f"[real] figure: {args.figure}")
    net = features.name if features else None
    header, rows = ev.comparison_table(list(results), metrics, cfg, net)
    return {"source": f"{len(files)} photos of {args.real} (sorted, first {len(files)}), "
                                    f"downscaled to {gen.image_size[0]}x{gen.image_size[1]}",
            "n_images": len(files), "feature_network": net,
            "feature_network_description": features.description if features else "none",
            "methods": {m: {"label": ev.method_label(m, cfg), **metrics[m]} for m in results},
            "table": {"header": header, "rows": rows}, "identity": identity, "figure": str(args.figure)}


# --------------------------------------------------------------------------------------------
# results


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def real_table(real: dict) -> list[str]:
    """The real-faces table: the library's columns without latent error, plus identity columns."""
    header, rows = list(real["table"]["header"]), [list(r) for r in real["table"]["rows"]]
    ident = real["identity"]
    methods = list(real["methods"])
    if "dlib" in ident:
        header += ["dlib distance (photo vs reconstruction)", f"same person (dlib < {DLIB_THRESHOLD})"]
        for row, m in zip(rows, methods, strict=True):
            row += [f"{ident['dlib'][m]['distance']:.3f}", f"{ident['dlib'][m]['same_person_fraction']:.2f}"]
    if "face_model" in ident:
        header.append("cosine (face model)")
        for row, m in zip(rows, methods, strict=True):
            row.append(f"{ident['face_model'][m]['cosine']:.3f}")
    base = ident.get("dlib", {}).get("other photo") or ident.get("face_model", {}).get("other photo")
    if base:
        row = ["another photo of the set (baseline)"] + [""] * (len(real["table"]["header"]) - 1)
        if "dlib" in ident:
            d = ident["dlib"]["other photo"]
            row += [f"{d['distance']:.3f}", f"{d['same_person_fraction']:.2f}"]
        if "face_model" in ident:
            row.append(f"{ident['face_model']['other photo']['cosine']:.3f}")
        rows.append(row)
    return ev.markdown_table(header, rows).splitlines()


def write_results(res: dict, out: Path) -> None:
    atomic_write_json(out / "results.json", res)
    h = res["machine"]
    lines = [f"Measured on {h['machine']} ({h['torch']}), {h['date']}; device {res['device']}.", ""]
    e = res.get("encoder")
    if e:
        rel = e.get("heldout_latent_error_rel")
        lines += [f"Encoder: ResNet-18 for the {e['generator']}, trained {e['steps']} steps of {e['batch_size']} "
                  f"({e['samples']:,} z; the recipe: {e['recipe_steps']:,} steps) in {minutes(e['train_seconds'])} "
                  f"({e['precision']}, {e['seconds_per_step']:.2f} s per step"
                  + (f", median {e['median_step_seconds']:.2f} s after the first" if e["median_step_seconds"] else "")
                  + f"), perceptual network "
                  f"{e['features']}; held-out latent error {e['heldout_latent_error']:.3f}"
                  + (f" ({100 * rel:.1f}% of |z|)" if rel is not None else "")
                  + f", pixel MSE {e['heldout_pixel_mse']:.4f}.", ""]
    g = res.get("generated")
    if g:
        d = g["doc"]
        lines += [f"Generated faces: {d['source']}. Feature network: {d['feature_network_description']}.", "",
                  *ev.markdown_table(d["table"]["header"], d["table"]["rows"]).splitlines(), "", g["comparison"], ""]
    r = res.get("real")
    if r:
        ident = r["identity"]
        who = []
        if "dlib" in ident:
            who.append(f"dlib's descriptors (distance, same person below {DLIB_THRESHOLD})")
        elif "dlib_skipped" in ident:
            who.append(f"dlib skipped: {ident['dlib_skipped']}")
        if "face_model" in ident:
            who.append(f"{ident['face_model_name']} (cosine similarity)")
        lines += [f"Real faces: {r['source']}. Feature network: {r['feature_network_description']}. Identity kept: "
                  f"{'; '.join(who)}, photo and reconstruction enlarged to {IDENTITY_SIZE}x{IDENTITY_SIZE}.", "",
                  *real_table(r), ""]
        if "dlib" in ident:
            best = min(r["methods"], key=lambda m: ident["dlib"][m]["distance"])
            lines += [f"Identity: the lowest dlib distance is {SHORT[best]}'s ({ident['dlib'][best]['distance']:.3f}; "
                      f"different people: {ident['dlib'].get('other photo', {}).get('distance', float('nan')):.3f}); "
                      "the seed found the hybrid's reconstructions recognised best.", ""]
        lines += [f"Figure: {r['figure']} (targets, then one row per method).", ""]
    atomic_write_text(out / "results.md", "\n".join(lines).rstrip() + "\n")


def reuse(res: dict, section: str, key: dict, redo: bool) -> dict | None:
    old = res.get(section)
    if not redo and old and old.get("key") == key:
        print(f"[{section}] already measured with these settings (--redo to measure again)")
        return old
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-invert")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--set", action="append", default=[], help="recipe override, e.g. train.batch_size=32")
    parser.add_argument("--encoder-steps", type=int, default=DEFAULT_ENCODER_STEPS,
                        help=f"encoder training steps (train.max_steps; default {DEFAULT_ENCODER_STEPS}, "
                             "about 10 min on 2 cores)")
    parser.add_argument("--features", help="feature network of the perceptual loss and FD (default: the recipe's "
                                           "random-resnet18); a facevox model folder or package.module:factory")
    parser.add_argument("--n", type=int, default=50, help="generated faces to invert (default 50)")
    parser.add_argument("--target-seed", type=int, default=0, help="seed of the generated faces' z (default 0)")
    parser.add_argument("--opt-steps", type=int, help="Adam steps of optimisation (default: the recipe's, 200)")
    parser.add_argument("--hybrid-steps", type=int, help="Adam steps after the encoder (default: the recipe's, 50)")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "ffhq-vs-stylegan2" / "real")
    parser.add_argument("--n-real", type=int, default=100, help="real photos to invert (default 100; 0 = all)")
    parser.add_argument("--face-model", type=Path, help="a facevox face embedder (facevox face train OUT/model) "
                                                        "for the cosine similarity of identities")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "invert_real.jpg")
    parser.add_argument("--device", help="auto (default), cpu, cuda, ...")
    parser.add_argument("--redo", action="store_true", help="measure again what results.json already holds")
    args = parser.parse_args()
    if args.n < 2 or args.n_real < 0 or args.n_real == 1:
        sys.exit("bench_invert: need --n >= 2 and --n-real >= 2 (or 0 = all): FD is a statistic of a set")
    if not args.real.is_dir():
        sys.exit(f"bench_invert: {args.real}: no such folder (see ../shared/data/README.md)")
    cfg = make_config(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    res = json.loads(results_file.read_text()) if results_file.is_file() else {}
    res.update(machine=machine_header(), device=str(resolve_device(cfg.device)))

    res["encoder"] = encoder_stage(cfg, args.out / "encoder")
    write_results(res, args.out)
    e = res["encoder"]
    print(f"[encoder] {e['steps']} steps in {minutes(e['train_seconds'])}; held-out latent error "
          f"{e['heldout_latent_error']:.3f}", flush=True)
    if e["features_network"] != cfg.features.network:
        print(f"note: the encoder was trained with the perceptual network {e['features_network']}; the tables use "
              f"{cfg.features.network} (another --out trains a new encoder)", file=sys.stderr)

    common = {"encoder": e["model"], "encoder_seconds": e["train_seconds"], "features": cfg.features.network,
              "optim": {k: v for k, v in vars(cfg.optim).items() if k != "log_every"}, "device": res["device"]}
    key = {**common, "n": args.n, "seed": args.target_seed}
    g = reuse(res, "generated", key, args.redo)
    if g is None:
        g = generated_stage(cfg, args, e)
        g["key"] = key
    res["generated"] = g
    write_results(res, args.out)
    print(g["comparison"], flush=True)

    key = {**common, "real": str(args.real), "n_real": args.n_real,
           "face_model": str(args.face_model) if args.face_model else None, "figure": str(args.figure)}
    r = reuse(res, "real", key, args.redo or not args.figure.is_file())
    if r is None:
        r = real_stage(cfg, args, e)
        r["key"] = key
    res["real"] = r
    write_results(res, args.out)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
