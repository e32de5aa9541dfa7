"""Running the inversion methods on image files, measuring them, and the comparison report.

Metrics per method: PSNR and SSIM (images in [0, 1]), the perceptual distance and "FD (<network>)"
with the named feature network, the latent error ||z - z_hat|| (mean L2 per image, only where
the true z is known: generated targets), and wall time (all images, and per image). For an
audio generator (``--generator wavegan:MODEL``): the multi-resolution STFT distance, the log-mel
L1 distance and the SNR of each reconstructed clip, the latent error and the time; the outputs
are WAVs of the targets and reconstructions and a grid of their log-mel spectrograms.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.config import save_config, to_dict
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_json, atomic_write_text
from facevox.image.io import list_image_files, load_image
from facevox.metrics import psnr, ssim
from facevox.outdir import output_dir, prepare_output
from facevox.tasks.fakeface.scoring import inference_device, inference_precision
from facevox.tasks.invert.audio import AUDIO_PERCEPTUAL, audio_metrics, load_clips, mel_pictures
from facevox.tasks.invert.config import InvertConfig
from facevox.tasks.invert.encoder import Encoder, check_pair, encode, hybrid, load_encoder, load_features
from facevox.tasks.invert.fd import feature_fd
from facevox.tasks.invert.generators import DCGAN_FACE, WAVEGAN, Generator, load_generator, sample_latents
from facevox.tasks.invert.optimise import Inversion, clamp_output, optimise_latents
from facevox.tasks.invert.perceptual import RANDOM_RESNET18, FeatureNet, load_feature_net, perceptual_distance

METHODS = ("optim", "encoder", "hybrid")


# --------------------------------------------------------------------------------------------
# setting up: generator, feature network, encoder, images


def setup(cfg: InvertConfig, encoder_path: str | Path | None = None,
          need_encoder: bool = False) -> tuple[Generator, FeatureNet | None, Encoder | None]:
    """Generator, feature network and encoder of a run. Unset generator / features settings take
    the encoder's (its extra.json), else the defaults (dcgan-face, random-resnet18)."""
    device = inference_device(cfg.device, key="--device")
    encoder = None
    g, f = cfg.generator, cfg.features
    gen_kwargs = {"weights": g.weights, "nz": g.nz, "output_range": g.output_range}
    source, network, stages, fsize = g.source, f.network, f.stages, f.input_size
    if encoder_path:
        encoder = load_encoder(encoder_path, device)
        if not source:
            spec = encoder.extra["generator"]
            source = spec["source"]
            _only_if_named(source, DCGAN_FACE, "generator", encoder_path)
            gen_kwargs = {"weights": spec.get("weights", ""), "nz": spec.get("nz"),
                          "output_range": tuple(spec.get("output_range", (-1.0, 1.0)))}
        if not network:
            ef = encoder.extra.get("features", {})
            network, stages, fsize = ef.get("network", ""), ef.get("stages", []), ef.get("input_size", 0)
            _only_if_named(network, RANDOM_RESNET18, "features", encoder_path)
    elif need_encoder:
        raise FacevoxError("the encoder and hybrid methods need a trained encoder (--encoder MODEL)", "--encoder")
    gen = load_generator(source or DCGAN_FACE, device=device, **gen_kwargs)
    if encoder is not None:
        check_pair(encoder, gen, encoder_path)
    if gen.kind == "audio":
        f = type(cfg.features)(network=network, stages=list(stages), input_size=fsize)
        features = load_features(cfg, gen, device, f)
    else:
        features = load_feature_net(network or RANDOM_RESNET18, stages=stages, input_size=fsize, device=device)
    return gen, features, encoder


def _only_if_named(name: str, builtin: str, flag: str, where: str | Path) -> None:
    """facevox runs a user's code (a module, a TorchScript file) only where the user names it on the
    command line or in a recipe, never because a model folder's extra.json names it."""
    if (not name or name in (builtin, AUDIO_PERCEPTUAL) or name.startswith(WAVEGAN)
            or (Path(name) / "model.yaml").is_file()):
        return  # built in, or a model folder (weights only)
    raise FacevoxError(f"this encoder was trained with the {flag} '{name}', which is code (a Python module or a "
                       f"TorchScript file); facevox runs code only where you name it: pass --{flag} {name} to use it",
                       where)


def fit_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) of any size -> (size[0], size[1], 3). A square size: the shorter side is
    scaled to it and the centre cropped (no distortion); otherwise the image is resized."""
    from PIL import Image

    from facevox.image.transforms import resize_square

    if size[0] == size[1]:
        return resize_square(img, size[0])
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.LANCZOS))


def generator_targets(gen: Generator, paths: Sequence[str | Path]) -> tuple[torch.Tensor, list[Path]]:
    """Files for this generator: images resized to its size, or audio cut to its length."""
    if gen.kind == "audio":
        return load_clips(paths, gen.samples, gen.sample_rate)
    return load_targets(paths, gen.image_size)


def load_targets(paths: Sequence[str | Path], size: tuple[int, int]) -> tuple[torch.Tensor, list[Path]]:
    """Image files and folders (searched recursively) -> (N, 3, H, W) in [0, 1] at ``size``, and the files."""
    from facevox.image.transforms import to_tensor

    files: list[Path] = []
    for p in map(Path, paths):
        files += list_image_files(p) if p.is_dir() else [p]
    if not files:
        raise FacevoxError("no images given")
    return to_tensor([fit_image(load_image(p), size) for p in files]), files


# --------------------------------------------------------------------------------------------
# the methods behind one call


def invert(method: str, gen: Generator, targets: torch.Tensor, cfg: InvertConfig,
           features: FeatureNet | None = None, encoder: Encoder | None = None,
           amp: torch.dtype | None = None) -> Inversion:
    """Invert ``targets`` (N, 3, H, W) in [0, 1] with ``method`` (optim, encoder or hybrid); ``amp``:
    the autocast dtype of the networks' forward passes (None: fp32)."""
    if method not in METHODS:
        raise FacevoxError(f"unknown method '{method}'; valid methods: {', '.join(METHODS)}", "--method")
    if method == "optim":
        return optimise_latents(gen, targets, cfg.optim, features, amp=amp)
    if encoder is None:
        raise FacevoxError(f"the {method} method needs a trained encoder (--encoder MODEL)", "--encoder")
    if method == "encoder":
        return encode(encoder, gen, targets, cfg.optim.batch_size, amp)
    return hybrid(encoder, gen, targets, cfg.optim, features, amp=amp)


def method_label(method: str, cfg: InvertConfig) -> str:
    o = cfg.optim
    if method == "optim":
        return f"optimisation ({o.steps} steps" + (f", {o.restarts} starts)" if o.restarts > 1 else ")")
    if method == "hybrid":
        return f"hybrid (encoder + {o.hybrid_steps} steps)"
    return "encoder (ResNet-18)"


@torch.no_grad()
def inversion_metrics(targets: torch.Tensor, result: Inversion, features: FeatureNet | None = None,
                      z_true: torch.Tensor | None = None, batch_size: int = 64, fd: bool = True) -> dict[str, Any]:
    """Summary metrics of one inversion, and per-image values under ``"per_image"``.

    ``fd``: also the Frechet distance of the feature statistics of targets and reconstructions
    (a statistic of the whole set: for at least 2 images, meaningful for many)."""
    x, y = targets.float().cpu(), result.images.float().cpu()
    n = x.shape[0]
    audio = x.ndim == 3  # waves (N, 1, T): spectral distances and SNR, no FD
    per: dict[str, list[float]] = audio_metrics(x, y) if audio else {"psnr": psnr(y, x).tolist()}
    if not audio and min(x.shape[-2:]) >= 11:  # SSIM's window
        per["ssim"] = ssim(y, x).tolist()
    fd_value = None
    if features is not None and not audio:
        device = next((p.device for p in features.parameters()), torch.device("cpu"))
        dists, fa, fb = [], [], []
        for i in range(0, n, batch_size):
            a, b = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            dists.append(perceptual_distance(features, b, a).cpu())
            if fd:
                fa.append(features.pooled(a).cpu())
                fb.append(features.pooled(b).cpu())
        per["perceptual"] = torch.cat(dists).tolist()
        if fd and n >= 2:
            fd_value = feature_fd(torch.cat(fa).double().numpy(), torch.cat(fb).double().numpy())
    if z_true is not None:
        err = (result.latents.float() - z_true.float().cpu()).norm(dim=1)
        per["latent_error"] = err.tolist()
        per["latent_error_rel"] = (err / z_true.float().cpu().norm(dim=1)).tolist()
    summary: dict[str, Any] = {k: float(np.mean(v)) for k, v in per.items()}
    if fd_value is not None:
        summary["fd"] = fd_value
    summary.update(seconds=result.seconds, seconds_per_image=result.seconds / max(1, n), n_images=n)
    if result.losses is not None:
        summary["final_loss"] = float(result.losses.mean())
    summary["per_image"] = per
    return summary


def comparison_grid(targets: torch.Tensor, results: Sequence[Inversion], path: Path, n_show: int = 8,
                    labels: Sequence[str] | None = None) -> Path:
    """Row 1: targets; one row per method: its reconstructions (the first ``n_show`` images)."""
    from facevox.report import plot_image_grid  # matplotlib: only where a figure is drawn

    k = min(n_show, targets.shape[0])
    rows = [targets[:k]] + [r.images[:k] for r in results]
    if targets.ndim == 3:  # waves: their log-mel spectrograms, on one scale
        rows = list(mel_pictures(torch.cat(rows)).split(k))
    names = ["target"] + list(labels or [r.method for r in results])
    titles = [f"{name} {i}" for name in names for i in range(k)]
    return plot_image_grid(torch.cat(rows).clamp(0, 1), path, titles=titles, ncols=k)


# --------------------------------------------------------------------------------------------
# invert run: image files -> latents, grid


def run_inversion(cfg: InvertConfig, method: str, images: Sequence[str | Path], out: Path,
                  encoder_path: str | Path | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Invert image files (any size, resized to the generator's) with ``method``; write
    OUT/latents.npy (N, nz), OUT/latents.csv (row -> file, PSNR, ...), OUT/grid.png,
    OUT/reconstructions/*.png and OUT/inversion.json. Returns the summary metrics.

    The networks run on ``cfg.device``; ``precision`` (fp32, bf16, auto) is that of their forward
    passes during the inversion; the metrics are computed in fp32."""
    from facevox.image.io import save_image

    prepare_output(out)  # a wrong --out fails now, not after the inversion
    gen, features, encoder = setup(cfg, encoder_path, need_encoder=method != "optim")
    amp = inference_precision(precision, gen_torch_device(gen))
    targets, files = generator_targets(gen, images)
    result = invert(method, gen, targets, cfg, features, encoder, amp)
    metrics = inversion_metrics(targets, result, features, fd=False)  # FD is a statistic of a set: see eval
    with output_dir(out, "invert run") as out:  # every output in a new folder, swapped in at the end
        save_config(cfg, out / "config.yaml")
        _save_npy(out / "latents.npy", result.latents.numpy().astype(np.float32))
        per = metrics.pop("per_image")
        rows = [{"row": i, "file": str(f), **{k: round(v[i], 6) for k, v in per.items()}} for i, f in enumerate(files)]
        atomic_write_text(out / "latents.csv", _csv(rows))
        for i, (f, img) in enumerate(zip(files, result.images, strict=True)):
            if gen.kind == "audio":
                _save_wavs(out, f"{i:04d}_{f.stem}", targets[i], {"reconstructions": img}, gen.sample_rate)
            else:
                save_image(out / "reconstructions" / f"{i:04d}_{f.stem}.png", _to_uint8(img))
        comparison_grid(targets, [result], out / "grid.png", labels=[method])
        summary = {"method": method, "label": method_label(method, cfg), "generator": gen.describe(),
                   "feature_network": features.description if features else "none",
                   "encoder": str(encoder_path) if encoder_path else None, "device": gen_device(gen),
                   "precision": _precision_name(amp), **metrics,
                   "settings": to_dict(cfg.optim), "files": [str(f) for f in files]}
        atomic_write_json(out / "inversion.json", summary)
    return summary


def _save_wavs(out: Path, stem: str, target: torch.Tensor, recon: dict[str, torch.Tensor], sample_rate: int) -> None:
    """OUT/targets/STEM.wav and OUT/<folder>/STEM.wav for each reconstruction."""
    from facevox.audio.io import save_wav

    save_wav(out / "targets" / f"{stem}.wav", target.reshape(-1).numpy(), sample_rate)
    for folder, wave in recon.items():
        save_wav(out / folder / f"{stem}.wav", wave.reshape(-1).numpy(), sample_rate)


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return path


# --------------------------------------------------------------------------------------------
# invert eval: the methods side by side


def evaluate_inversion(cfg: InvertConfig, out: Path, *, methods: Sequence[str] = METHODS,
                       encoder_path: str | Path | None = None, n: int = 50, seed: int = 0,
                       images: str | Path | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Compare ``methods`` on ``n`` generated faces (z from ``seed``: latent error known) or on the
    images of a folder; write OUT/table.md, OUT/results.json, OUT/grid.png and OUT/report.html.

    ``precision`` is that of the methods' forward passes; the generated targets and the metrics are
    always fp32."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise FacevoxError(f"unknown method '{(unknown or [''])[0]}'; valid methods: {', '.join(METHODS)}",
                           "--methods")
    prepare_output(out)  # a wrong --out fails now, not after the inversions
    gen, features, encoder = setup(cfg, encoder_path, need_encoder=any(m != "optim" for m in methods))
    amp = inference_precision(precision, gen_torch_device(gen))
    audio = gen.kind == "audio"
    if images:
        targets, files = generator_targets(gen, [images])
        z_true = None
        source = (f"{len(files)} clips from {images}, the centre {gen.samples} samples of each" if audio else
                  f"{len(files)} images from {images}, resized to {gen.image_size[0]}x{gen.image_size[1]}")
    else:
        if n < 1:
            raise FacevoxError(f"need at least one {'clip' if audio else 'image'}, got n={n}", "--n")
        z_true = sample_latents(n, gen.nz, seed)
        with torch.no_grad():
            device = next(gen.parameters()).device
            targets = torch.cat([clamp_output(gen, gen(z_true[i : i + 64].to(device))).cpu() for i in range(0, n, 64)])
        source = f"{n} {'clips' if audio else 'faces'} drawn by the generator from z ~ N(0, I), seed {seed}"
    results = []
    for m in methods:
        what = "clips" if audio else "images"
        print(f"invert eval: {method_label(m, cfg)} on {targets.shape[0]} {what}", file=sys.stderr, flush=True)
        results.append(invert(m, gen, targets, cfg, features, encoder, amp))
    metrics = {m: inversion_metrics(targets, r, features, z_true) for m, r in zip(methods, results, strict=True)}
    for m in metrics.values():
        m.pop("per_image")
    net = features.name if features else None
    header, rows = comparison_table(methods, metrics, cfg, None if audio else net)
    with output_dir(out, "invert eval") as out:  # every output in a new folder, swapped in at the end
        doc = {"source": source, "generator": gen.describe(), "feature_network": net,
               "feature_network_description": features.description if features else "none",
               "encoder": str(encoder_path) if encoder_path else None, "device": gen_device(gen),
               "precision": _precision_name(amp), "settings": to_dict(cfg.optim),
               "methods": {m: {"label": method_label(m, cfg), **metrics[m]} for m in methods},
               "table": {"header": header, "rows": rows}}
        save_config(cfg, out / "config.yaml")
        atomic_write_json(out / "results.json", doc)
        atomic_write_text(out / "table.md", markdown_table(header, rows))
        if audio:
            for i in range(min(8, targets.shape[0])):
                _save_wavs(out / "wavs", f"{i:02d}", targets[i], {m: r.images[i] for m, r in zip(methods, results,
                                                                                        strict=True)}, gen.sample_rate)
        from facevox.report import Table, write_html_report

        labels = [method_label(m, cfg).split(" (")[0] for m in methods]
        comparison_grid(targets, results, out / "grid.png", labels=labels)
        notes = [f"Targets: {source}.", f"Generator: {gen.describe()}.",
                 f"Feature network (perceptual distance and FD): {doc['feature_network_description']}.",
                 "FD is the Frechet distance between Gaussian fits of the feature network's pooled last-stage "
                 "features of targets and reconstructions; it is not FID (no Inception network here)."
                 if not audio else "Audio: MR-STFT is the multi-resolution STFT loss (spectral convergence + "
                 "log-magnitude L1, FFT sizes 512/1024/2048), log-mel L1 the mean absolute difference of the "
                 "80-band log-mel spectrograms, SNR that of the samples; the grid shows log-mel spectrograms; "
                 "wavs/ holds the first 8 targets and reconstructions.",
                 f"Optimisation: Adam, lr {cfg.optim.lr}, loss weights pixel {cfg.optim.pixel}, perceptual "
                 f"{cfg.optim.perceptual}, prior {cfg.optim.prior}; device {gen_device(gen)}, "
                 f"{_precision_name(amp)}."]
        write_html_report(out, "GAN inversion: optimisation, encoder and hybrid", figures=[
            ("Targets (top row) and reconstructions, one row per method" + (" (log-mel spectrograms)" if audio
                                                                          else ""), out / "grid.png")],
            tables=[Table(f"Inversion of {source}", header, rows)], notes=notes,
            subtitle=f"{gen.describe()}; features: {net or 'none'}")
    return doc


def gen_torch_device(gen: Generator) -> torch.device:
    return next((p.device for p in gen.parameters()), torch.device("cpu"))


def gen_device(gen: Generator) -> str:
    return str(gen_torch_device(gen))


def _precision_name(amp: torch.dtype | None) -> str:
    return "bf16 autocast" if amp == torch.bfloat16 else "fp32"


def comparison_table(methods: Sequence[str], metrics: dict[str, dict[str, Any]], cfg: InvertConfig,
                     net: str | None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: one row per method; FD and perceptual columns name the network."""
    cols = [("PSNR (dB)", "psnr"), ("SSIM", "ssim"), ("MR-STFT", "mrstft"), ("log-mel L1", "logmel_l1"),
            ("SNR (dB)", "snr_db")]
    if net:
        cols += [(f"perceptual ({net})", "perceptual"), (f"FD ({net})", "fd")]
    per = "clip" if any("mrstft" in metrics[m] for m in methods) else "image"
    cols += [("latent error", "latent_error"), ("seconds (all)", "seconds"), (f"seconds / {per}", "seconds_per_image")]
    cols = [(h, k) for h, k in cols if any(k in metrics[m] for m in methods)]
    rows = [[method_label(m, cfg)] + [_round(metrics[m].get(k)) for _, k in cols] for m in methods]
    return ["method"] + [h for h, _ in cols], rows


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.4g}")
    return "" if v is None else v


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
