"""``facevox invert ...``: train-encoder, run, eval. Each command is a thin call into the task."""

from __future__ import annotations

import argparse
from pathlib import Path

from facevox.config import SEED, load_config, ranged_arg, validate
from facevox.errors import FacevoxError
from facevox.tasks.invert.config import InvertConfig


def _config(args: argparse.Namespace) -> InvertConfig:
    """The recipe plus --set overrides, then the flags that name a generator, features or settings."""
    cfg = load_config(InvertConfig, args.recipe, args.overrides)
    g, o = cfg.generator, cfg.optim
    if args.generator:
        g.source = args.generator
    if args.weights:
        g.weights = args.weights
    if args.nz is not None:
        g.nz = args.nz
    if args.output_range:
        g.output_range = _range(args.output_range)
    if args.features:
        cfg.features.network = args.features
    if args.device:
        cfg.device = cfg.train.device = args.device
    for flag, key in (("steps", "steps"), ("hybrid_steps", "hybrid_steps"), ("restarts", "restarts"), ("lr", "lr"),
                      ("pixel", "pixel"), ("perceptual", "perceptual"), ("prior", "prior"),
                      ("batch_size", "batch_size"), ("seed", "seed")):
        if getattr(args, flag, None) is not None:
            setattr(o, key, getattr(args, flag))
    validate(cfg)  # the flags above change the loaded config: check it again (ranges, cross-field rules)
    return cfg


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise FacevoxError(f"expected LOW,HIGH such as -1,1 or 0,1, got {text!r}", "--output-range") from None
    return lo, hi


def _train(args: argparse.Namespace) -> None:
    from facevox.tasks.invert.encoder import train_encoder

    result = train_encoder(_config(args), Path(args.out), resume=not args.restart)
    print(f"model: {result['model']}  (trained in {result['train_seconds']:.0f} s)")
    print(f"held-out: latent error {result['heldout_latent_error']:.4f} "
          f"({100 * result['heldout_latent_error_rel']:.1f}% of |z|)  pixel MSE {result['heldout_pixel_mse']:.5f}")


def _run(args: argparse.Namespace) -> None:
    from facevox.tasks.invert.evaluate import run_inversion

    s = run_inversion(_config(args), args.method, args.images, Path(args.out), encoder_path=args.encoder,
                      precision=args.precision)
    if "mrstft" in s:  # an audio generator
        print(f"{s['label']}: {s['n_images']} clip(s) in {s['seconds']:.2f} s  MR-STFT {s['mrstft']:.4f}  "
              f"log-mel L1 {s['logmel_l1']:.4f}  SNR {s['snr_db']:.2f} dB")
    else:
        perceptual = f"  perceptual {s['perceptual']:.4f}" if "perceptual" in s else ""
        print(f"{s['label']}: {s['n_images']} image(s) in {s['seconds']:.2f} s  PSNR {s['psnr']:.2f} dB{perceptual}")
    print(f"latents: {Path(args.out) / 'latents.npy'}  grid: {Path(args.out) / 'grid.png'}")


def _eval(args: argparse.Namespace) -> None:
    from facevox.tasks.invert.evaluate import evaluate_inversion, markdown_table

    doc = evaluate_inversion(_config(args), Path(args.out), methods=args.methods, encoder_path=args.encoder,
                             n=args.n, seed=args.target_seed, images=args.images, precision=args.precision)
    print(markdown_table(doc["table"]["header"], doc["table"]["rows"]), end="")
    print(f"report: {Path(args.out) / 'report.html'}")


def add_commands(sub: argparse._SubParsersAction, add_set) -> None:
    """Register the invert commands on the ``facevox invert`` sub-parser."""
    from facevox.tasks.fakeface.scoring import PRECISIONS

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--recipe", help="YAML recipe file or built-in name, e.g. encoder_dcgan (facevox list recipes)")
        p.add_argument("--generator", help="dcgan-face (default), wavegan:MODEL_FOLDER (an audio GAN of facevox "
                                           "voice train-gan), package.module:factory, or a TorchScript file. "
                                           "USER CODE: a module named here is imported and its factory called, a "
                                           "TorchScript file is run; name only code you trust. run/eval with "
                                           "--encoder: the encoder's generator, if it is dcgan-face or wavegan: "
                                           "(code must be named here again)")
        p.add_argument("--weights", help="state dict to load into the generator")
        p.add_argument("--nz", type=ranged_arg(int, ge=1), help="latent size (default: the generator's nz attribute)")
        p.add_argument("--output-range", help="the generator's pixel range, e.g. -1,1 (default) or 0,1")
        p.add_argument("--features", help="network of the perceptual loss and FD: random-resnet18 (default), a "
                                          "facevox model folder, package.module:factory (USER CODE: the module is "
                                          "imported), or none; audio generators: mrstft-logmel (default), a "
                                          "facevox speaker model folder (adds its embeddings) or none")
        p.add_argument("--device", help="where the generator, encoder and feature network run: auto (default: the "
                                        "GPU of this process if there is one, else the CPU), cpu, cuda or cuda:N")
        add_set(p)

    def optim(p: argparse.ArgumentParser) -> None:
        p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                       help="of the networks' forward passes while inverting: fp32 (default), bf16 (autocast; z, "
                            "Adam and the losses stay fp32) or auto (bf16 where the hardware has it); the "
                            "metrics are always computed in fp32")
        p.add_argument("--encoder", help="encoder model folder (OUT/model of invert train-encoder)")
        p.add_argument("--steps", type=ranged_arg(int, ge=0), help="Adam steps of the optim method (default 200)")
        p.add_argument("--hybrid-steps", type=ranged_arg(int, ge=0), help="Adam steps after the encoder (default 50)")
        p.add_argument("--restarts", type=ranged_arg(int, ge=1), help="random starts per image, best kept (default 1)")
        p.add_argument("--lr", type=ranged_arg(float, gt=0), help="Adam learning rate on z (default 0.05)")
        p.add_argument("--pixel", type=ranged_arg(float, ge=0), help="weight of the pixel MSE (default 1)")
        p.add_argument("--perceptual", type=ranged_arg(float, ge=0),
                       help="weight of the perceptual distance (default 1)")
        p.add_argument("--prior", type=ranged_arg(float, ge=0), help="weight of ||z||^2/nz (default 0)")
        p.add_argument("--batch-size", type=ranged_arg(int, ge=1), help="images inverted together (default 50)")
        p.add_argument("--seed", type=ranged_arg(int, **SEED), help="seed of the random starts (default 0)")

    p = sub.add_parser("train-encoder", help="train the ResNet-18 encoder on (z, G(z)) pairs",
                       description="Train an encoder image -> z with z, pixel and perceptual losses; "
                                   "the model is saved in OUT/model.")
    common(p)
    p.add_argument("--out", default="runs/invert-encoder", help="run folder; the model is saved in OUT/model")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    p.set_defaults(handler=_train)

    p = sub.add_parser("run", help="invert images or clips: latents.npy and a grid of targets and reconstructions",
                       description="Invert image files or folders (any size; resized to the generator's), or for "
                                   "an audio generator audio files (the centre of each, cut to its length).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image (or audio) files or folders")
    p.add_argument("--method", default="optim", choices=["optim", "encoder", "hybrid"])
    p.add_argument("--out", default="runs/invert", help="output folder")
    common(p)
    optim(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser("eval", help="compare the methods: table (markdown, JSON) and HTML report",
                       description="Invert N generated faces (known z) or a folder of images with each method.")
    p.add_argument("--methods", nargs="+", default=["optim", "encoder", "hybrid"],
                   choices=["optim", "encoder", "hybrid"])
    p.add_argument("--n", type=ranged_arg(int, ge=1), default=50, help="generated faces to invert (default 50)")
    p.add_argument("--target-seed", type=ranged_arg(int, **SEED), default=0, help="seed of the generated faces' z")
    p.add_argument("--images", help="a folder of images (audio generator: audio files) to invert instead of "
                                    "generated ones")
    p.add_argument("--out", default="runs/invert-eval", help="output folder")
    common(p)
    optim(p)
    p.set_defaults(handler=_eval)
