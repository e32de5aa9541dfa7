"""``facevox voice make-fakes|train|eval|predict|explain``: the generated-speech detector."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from facevox.config import ranged_arg


def _make_fakes(args: argparse.Namespace) -> None:
    from facevox.tasks.voice.fakes import make_fakes

    r = make_fakes(args.corpus, args.out, generators=args.generators, vocoder=args.vocoder,
                   clip_seconds=args.clip_seconds, max_clips=args.max_clips, clips_per_file=args.clips_per_file,
                   test_corpus=args.test_corpus, fractions=args.split, seed=args.seed, workers=args.workers)
    counts = "; ".join(f"{s}: " + ", ".join(f"{g} {n}" for g, n in sorted(c.items()))
                       for s, c in sorted(r["counts"].items()))
    print(f"{r['clips']} real clips and their fakes -> {args.out}  ({counts})")
    print(f"index: {r['index']}")


def _train(args: argparse.Namespace) -> None:
    from facevox.config import load_config
    from facevox.tasks.voice.detector_config import RECIPES, DetectorConfig
    from facevox.tasks.voice.detector_train import train_detector

    overrides = [f"data.source={args.data}", *args.overrides]
    if args.train_generators:
        overrides.append(f"data.train_generators=[{','.join(args.train_generators)}]")
    cfg = load_config(DetectorConfig, RECIPES.get(args.recipe, args.recipe), overrides)
    r = train_detector(cfg, Path(args.out), resume=not args.restart, licence=args.licence, workers=args.workers)
    print(f"model: {r['model']}  (trained in {r['train_seconds']:.0f} s)")
    if "test" in r:
        _print_metrics(r["test"])
        print(f"report: {Path(args.out) / 'eval' / 'report.html'}")


def _print_metrics(m: dict) -> None:
    print(f"test: AP {m['average_precision']:.4f}  ROC-AUC {m['roc_auc']:.4f}  EER {m['eer']:.4f}  "
          f"accuracy {m['accuracy']:.4f}")
    for g, r in m["per_generator"].items():
        print(f"  {g:<11} AP {r['average_precision']:.4f}  EER {r['eer']:.4f}")


def _eval(args: argparse.Namespace) -> None:
    from facevox.tasks.voice.detector_eval import evaluate_voice

    m = evaluate_voice(args.model, args.data, args.out, split=args.split, generators=args.generators,
                       perturb=args.perturb, device=args.device, precision=args.precision, workers=args.workers)
    _print_metrics(m)
    print(f"report: {Path(args.out) / 'report.html'}")


def _predict(args: argparse.Namespace) -> None:
    from facevox.tasks.fakeface.predict import show_predictions
    from facevox.tasks.voice.detector_predict import predict_voice

    rows = predict_voice(args.model, args.files, device=args.device, precision=args.precision, workers=args.workers)
    show_predictions(args.out, rows)


def _explain(args: argparse.Namespace) -> None:
    from facevox.tasks.voice.detector_saliency import explain_voice

    path = explain_voice(args.model, args.file, args.out, methods=args.method, target=args.target, device=args.device)
    print(f"saliency: {path}")


def add_detector_commands(sub: argparse._SubParsersAction, add_set: Callable) -> None:
    """Add the detector's commands to ``facevox voice``."""
    from facevox.tasks.fakeface.scoring import DEVICE_HELP, PRECISION_HELP, PRECISIONS
    from facevox.tasks.voice.detector_config import GENERATORS
    from facevox.tasks.voice.detector_eval import PERTURBATIONS
    from facevox.tasks.voice.detector_saliency import METHODS

    def device_flags(p: argparse.ArgumentParser, precision: bool = True) -> None:
        p.add_argument("--device", default="auto", help=DEVICE_HELP)
        if precision:
            p.add_argument("--precision", default="fp32", choices=PRECISIONS, help=PRECISION_HELP)

    def workers(p: argparse.ArgumentParser, default: int = 0) -> None:
        p.add_argument("--workers", type=ranged_arg(int, ge=0), default=default,
                       help=f"processes that decode the audio (0: in this process; default {default})")

    p = sub.add_parser("make-fakes", help="cut real clips from a speaker corpus and make generated versions",
                       description="Cut clips from CORPUS/<speaker>/*.flac|wav..., write each real clip and one "
                                   "generated version per generator as WAV, and OUT/index.csv (split by speaker).")
    p.add_argument("corpus", metavar="CORPUS", help="folder of speaker sub-folders of audio (LibriSpeech layout)")
    p.add_argument("--out", required=True, help="folder for the clips and index.csv (replaced as a whole)")
    p.add_argument("--generators", nargs="+", default=["griffinlim", "synth"], metavar="GEN",
                   help=f"of {', '.join(GENERATORS)} (default: griffinlim synth; melgan needs --vocoder)")
    p.add_argument("--vocoder", help="MelGAN model folder (facevox voice train-vocoder) for the melgan generator")
    p.add_argument("--clip-seconds", type=ranged_arg(float, ge=0.25, le=60), default=4.0)
    p.add_argument("--max-clips", type=ranged_arg(int, ge=0), default=0,
                   help="real clips at most per corpus, speakers taking turns (0: all)")
    p.add_argument("--clips-per-file", type=ranged_arg(int, ge=1), default=1)
    p.add_argument("--test-corpus", help="a second corpus whose speakers are all the test split "
                   "(CORPUS's speakers then go to train and val)")
    p.add_argument("--split", type=ranged_arg(float, ge=0, le=1), nargs=3, default=[0.7, 0.1, 0.2],
                   metavar=("TRAIN", "VAL", "TEST"), help="shares of the speakers (default 0.7 0.1 0.2)")
    p.add_argument("--seed", type=ranged_arg(int, ge=0), default=0)
    workers(p, 2)
    p.set_defaults(handler=_make_fakes)

    p = sub.add_parser("train", help="train a generated-speech detector (LCNN or the spectral baseline)",
                       description="Train on the train split of a make-fakes index; the test split is scored at "
                                   "the end (every generator, also those left out of training).")
    p.add_argument("data", metavar="DATA_OR_SPLIT", help="index.csv of facevox voice make-fakes, or its folder")
    p.add_argument("--recipe", default="lcnn", help="lcnn (default), spectral, or a YAML recipe file")
    p.add_argument("--out", required=True, help="run folder; the model is saved in OUT/model")
    p.add_argument("--train-generators", nargs="+", metavar="GEN",
                   help="train on these generators' fakes only (cross-generator evaluation)")
    p.add_argument("--licence", default="unknown", help="licence of the training data, for the model card")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    workers(p)
    add_set(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("eval", help="AP, EER per generator, per-speaker/sex audit, re-encoding robustness",
                       description="Evaluate a detector on one split (default test) of a make-fakes index.")
    p.add_argument("model", metavar="MODEL", help="model folder (OUT/model of voice train)")
    p.add_argument("data", metavar="DATA_OR_SPLIT", help="index.csv of facevox voice make-fakes, or its folder")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--generators", nargs="+", metavar="GEN", help="score only these generators' fakes")
    p.add_argument("--perturb", nargs="+", default=["none"], choices=["none", *PERTURBATIONS],
                   help="also score the clips re-encoded (mp3, ogg) or resampled to 8 kHz and back")
    device_flags(p)
    workers(p)
    p.set_defaults(handler=_eval)

    p = sub.add_parser("predict", help="real or generated? label and confidence per audio file",
                       description="Label audio files (or folders of them) as real or fake.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out", help="write predictions to this .json or .csv instead of printing them")
    p.set_defaults(out_is_file=True)
    device_flags(p)
    workers(p)
    p.set_defaults(handler=_predict)

    p = sub.add_parser("explain", help="saliency heatmap over the log-spectrogram of one clip",
                       description="Write OUT/saliency.png: the clip's log-spectrogram and each method's map over it.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True)
    p.add_argument("--method", nargs="+", default=["saliency"], choices=list(METHODS))
    p.add_argument("--target", default="predicted", choices=["predicted", "fake", "real"])
    device_flags(p, precision=False)
    p.set_defaults(handler=_explain)
