"""``facevox fakeface ...``: train, fuse, eval, predict, explain. Each command is a thin call into the task."""

from __future__ import annotations

import argparse
from pathlib import Path

from facevox.config import load_config, ranged_arg


def _train(args: argparse.Namespace) -> None:
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.fakeface.train import train_fakeface

    overrides = list(args.overrides)
    overrides += [f"data.source={args.data}"] if args.data else []
    overrides += [f"data.split={args.split}"] if args.split else []
    cfg = load_config(FakefaceConfig, args.recipe, overrides)
    result = train_fakeface(cfg, Path(args.out), resume=not args.restart, licence=args.licence)
    line = f"model: {result['model']}  (trained in {result['train_seconds']:.0f} s)"
    if "test" in result:
        t = result["test"]
        line += f"\ntest: AP {t['average_precision']:.4f}  ROC-AUC {t['roc_auc']:.4f}  accuracy {t['accuracy']:.4f}"
        line += f"\nreport: {Path(args.out) / 'eval' / 'report.html'}"
    print(line)


def _fuse(args: argparse.Namespace) -> None:
    from facevox.tasks.fakeface.face_probe import fuse_detector

    m = fuse_detector(args.model, args.split, args.out, box=args.face_box, skip_bad=args.skip_bad,
                      device=args.device, precision=args.precision)
    print(f"test AP: CNN {m['cnn']['average_precision']:.4f}, face probe {m['face_probe']['average_precision']:.4f}, "
          f"fused {m['fused']['average_precision']:.4f} (CNN weight {m['cnn_weight']:g}, chosen on val)")
    print(f"model: {args.out}")


def _eval(args: argparse.Namespace) -> None:
    from facevox.tasks.fakeface.evaluate import evaluate_detector

    m = evaluate_detector(args.model, args.data, args.out, split=args.split, perturb=args.perturb,
                          skip_bad=args.skip_bad, batch_size=args.batch_size, precision=args.precision,
                          device=args.device, workers=args.workers)
    print(f"AP {m['average_precision']:.4f}  ROC-AUC {m['roc_auc']:.4f}  accuracy {m['accuracy']:.4f} "
          f"(best {m['best_accuracy']:.4f} at {m['best_threshold']:.3f})  ECE {m['ece']:.4f}")
    print(f"report: {Path(args.out) / 'report.html'}")


def _predict(args: argparse.Namespace) -> None:
    from facevox.fileio import report_skipped
    from facevox.tasks.fakeface.predict import predict, show_predictions

    rows, bad = predict(args.model, args.paths, batch_size=args.batch_size, precision=args.precision,
                        skip_bad=args.skip_bad, device=args.device, workers=args.workers)
    show_predictions(args.out, rows)
    report_skipped(bad, "image")


def _attack(args: argparse.Namespace) -> None:
    from facevox.attacks.fakeface_run import attack_detector, parse_budget
    from facevox.attacks.report import summary_lines

    doc = attack_detector(args.model, args.data, args.out, attacks=args.attack,
                          eps=[parse_budget(e) for e in args.eps], pgd_steps=args.pgd_steps,
                          max_images=args.max_images, fakes_only=args.fakes_only, examples=args.examples)
    print("\n".join(summary_lines(doc)))
    print("AP " + "  ".join(f"{k} {v:.3f}" for k, v in doc["average_precision"].items()))
    print(f"report: {Path(args.out) / 'report.html'}")


def _explain(args: argparse.Namespace) -> None:
    from facevox.tasks.fakeface.predict import explain_images

    written = explain_images(args.model, args.images, args.out, methods=args.methods, target=args.target,
                             device=args.device, precision=args.precision)
    print(f"{len(written)} figure(s) in {args.out}")


def add_commands(sub: argparse._SubParsersAction, add_set) -> None:
    """Register the fakeface commands on the ``facevox fakeface`` sub-parser."""
    from facevox.tasks.fakeface.face_probe import FFHQ_FACE_BOX
    from facevox.tasks.fakeface.saliency import ALL_METHODS, METHODS
    from facevox.tasks.fakeface.scoring import DEVICE_HELP, PRECISION_HELP, PRECISIONS, WORKERS_HELP

    def device_flags(p: argparse.ArgumentParser, precision_help: str = PRECISION_HELP) -> None:
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        p.add_argument("--precision", default="fp32", choices=PRECISIONS, help=precision_help)

    p = sub.add_parser("train", help="train a detector (ResNet-50/18 or the spectral baseline)",
                       description="Train a GAN-face detector; the test split is scored at the end.")
    p.add_argument("--recipe", help="YAML recipe file or built-in name, e.g. resnet50_seed (facevox list recipes)")
    p.add_argument("--data", help="folder with real/ and fake/, or CSV manifest path,label[,groups]")
    p.add_argument("--split", help="split file to reuse (created there on first use; default OUT/split.csv)")
    p.add_argument("--out", default="runs/fakeface", help="run folder; the model is saved in OUT/model")
    p.add_argument("--licence", default="unknown", help="licence of the training data, for the model card")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    add_set(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("fuse", help="add a pretrained face network's probe to a trained detector",
                       description="Fit a logistic regression on dlib face descriptors (train split), choose "
                                   "how much it counts against the CNN (val split), report test AP, and "
                                   "save the fused detector as a new model folder.")
    p.add_argument("--model", required=True, help="model folder of fakeface train (OUT/model)")
    p.add_argument("--split", required=True, help="the split file the model was trained with (OUT/split.csv)")
    p.add_argument("--out", required=True, help="folder for the fused model")
    p.add_argument("--face-box", type=ranged_arg(float, ge=0, le=1), nargs=4, default=list(FFHQ_FACE_BOX),
                   metavar=("X0", "Y0", "X1", "Y1"),
                   help="face region as fractions of the image (default: FFHQ alignment's)")
    p.add_argument("--skip-bad", action="store_true", help="skip undecodable images and list them")
    device_flags(p, "precision of the CNN's logits the probe is fitted on (dlib's face network runs on the CPU "
                    "in fp32): " + PRECISION_HELP)
    p.set_defaults(handler=_fuse)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="model folder (OUT/model of fakeface train)")
        p.add_argument("--batch-size", type=ranged_arg(int, ge=1), default=32,
                       help="images scored together in one forward pass (default 32)")
        p.add_argument("--workers", type=ranged_arg(int, ge=0), default=2, help=WORKERS_HELP)
        device_flags(p)
        p.add_argument("--skip-bad", action="store_true", help="skip undecodable images and list them")

    p = sub.add_parser("eval", help="metrics, per-group audit, gallery and saliency report",
                       description="Evaluate a detector on a split file (its test split) or a labelled folder.")
    p.add_argument("--data", required=True, help="split file (uses --split), real/+fake/ folder or manifest")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--perturb", action="store_true", help="also score under JPEG 95/75/50, blur 1/2, downscale 2")
    p.add_argument("--out", default="runs/fakeface-eval")
    common(p)
    p.set_defaults(handler=_eval)

    p = sub.add_parser("predict", help="real or fake? label and confidence per image",
                       description="Label images (files or folders) as real or fake.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--out", help="write predictions to this .json or .csv instead of printing them")
    p.set_defaults(out_is_file=True)
    common(p)
    p.set_defaults(handler=_predict)

    p = sub.add_parser("explain", help="saliency overlays: gradient, Guided Backprop, Grad-CAM, IG",
                       description="Write saliency overlays of the detector's decision for each image.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--out", default="runs/fakeface-explain")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=ALL_METHODS)
    p.add_argument("--target", default="predicted", choices=["predicted", "fake", "real"],
                   help="the score to explain (default: the predicted class's)")
    device_flags(p, "precision of the forward pass that gives P(fake) and the predicted class: fp32 (default), "
                    "bf16 or auto; the saliency maps are always computed in fp32 (bf16 gradients are too coarse)")
    p.set_defaults(handler=_explain)

    p = sub.add_parser("attack", help="adversarial attacks (FGSM, PGD) on the detector: AP under attack, report",
                       description="Attack the GAN-face detector on labelled images (real/ + fake/ or a manifest): "
                       "each image pushed across the decision (--fakes-only: only fakes scored real). Writes "
                       "results.csv, metrics.json (AP per attack and budget), accuracy.png, examples/ and report.html.")
    p.add_argument("data", help="folder with real/ and fake/, or a CSV manifest path,label")
    p.add_argument("--model", required=True, help="fakeface model folder")
    p.add_argument("--out", default="runs/fakeface-attack")
    p.add_argument("--attack", nargs="+", default=["pgd"], choices=["fgsm", "pgd"])
    p.add_argument("--eps", nargs="+", default=["1/255", "2/255", "4/255"],
                   help="L-inf budgets in pixel units of [0, 1], as numbers or fractions (default: 1/255 2/255 4/255)")
    p.add_argument("--pgd-steps", type=ranged_arg(int, ge=1), default=10)
    p.add_argument("--max-images", type=ranged_arg(int, ge=0), default=0, help="a fixed random sample (0: all)")
    p.add_argument("--fakes-only", action="store_true", help="attack only the fakes (the forger's goal)")
    p.add_argument("--examples", type=ranged_arg(int, ge=0), default=4, help="examples saved as PNG")
    p.set_defaults(handler=_attack)
