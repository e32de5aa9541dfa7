"""``facevox face ...``: align, train, pairs, eval, embed, verify. Each command is a thin call into the task."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from facevox.config import IMAGE_SIZE, SEED, load_config, ranged_arg
from facevox.errors import FacevoxError


def _align(args: argparse.Namespace) -> None:
    from facevox.tasks.face.align import align_command

    align_command(Path(args.src), Path(args.out), backend=args.detector, size=tuple(args.size),
                  largest=args.largest, aligned=args.aligned, fallback=args.fallback)


def _train(args: argparse.Namespace) -> None:
    from facevox.tasks.face.config import FaceConfig
    from facevox.tasks.face.train import train_face

    overrides = list(args.overrides) + ([f"data.train={args.data}"] if args.data else [])
    cfg = load_config(FaceConfig, args.recipe, overrides)
    result = train_face(cfg, Path(args.out), resume=not args.restart, licence=args.licence)
    print(f"model: {result['model']}  (trained in {result['train_seconds']:.0f} s)")


def _pairs(args: argparse.Namespace) -> None:
    from facevox.tasks.face.pairs import make_pairs, read_identities, write_pairs

    ids = read_identities(args.root)
    if args.identities:
        unknown = [n for n in args.identities if n not in ids]
        if unknown:
            raise FacevoxError(f"no identity folder named {', '.join(map(repr, unknown[:3]))} under {args.root}",
                               "--identities")
        ids = {n: f for n, f in ids.items() if n in set(args.identities)}
    disjoint = {"auto": None, "yes": True, "no": False}[args.disjoint]
    pairs = make_pairs(ids, args.folds, args.per_fold, args.seed, disjoint)
    write_pairs(args.out, pairs, args.folds, args.per_fold)
    print(f"{len(pairs)} pairs ({args.folds} folds x {args.per_fold} same + {args.per_fold} different) -> {args.out}")


def _eval(args: argparse.Namespace) -> None:
    from facevox.tasks.face.evaluate import FaceScorer, evaluate_pairs

    is_bin = Path(args.pairs).suffix.lower() == ".bin"
    if is_bin:
        for flag, value in (("--root", args.root), ("--identify", args.identify), ("--embeddings", args.embeddings),
                            ("--skip-missing", args.skip_missing), ("--cohort", args.cohort)):
            if value:
                raise FacevoxError(f"not used with an InsightFace .bin ({args.pairs} holds its own images)", flag)
    elif not args.root:
        raise FacevoxError("give --root, the folder per identity the pairs file refers to (not needed for an "
                           "InsightFace .bin)", "--root")
    scorer = FaceScorer(args.model, args.backend, precision=args.precision, use="face eval", device=args.device,
                        workers=args.workers, batch_size=args.batch_size, skip_bad=args.skip_bad,
                        embeddings=args.embeddings, refuse_unaligned=args.refuse_unaligned)
    if is_bin:
        from facevox.tasks.face.insightface_bin import evaluate_bin

        m = evaluate_bin(args.pairs, args.out, scorer)
    else:
        m = evaluate_pairs(args.pairs, args.root, args.out, scorer, identify_root=args.identify,
                           skip_missing=args.skip_missing, cohort=args.cohort, asnorm_top_k=args.asnorm_top_k)
    same_fold = "  (1 fold: threshold chosen on the same fold, optimistic)" if m["n_folds"] == 1 else ""
    print(f"{m['n_folds']}-fold accuracy {100 * m['kfold_accuracy']:.2f}% +- {100 * m['kfold_std']:.2f}  "
          f"EER {100 * m['eer']:.2f}%  TAR@FAR=1e-3 {m['tar_at_far_0.001']:.4f}{same_fold}")
    if m.get("skipped_pairs"):
        print(f"{len(m['skipped_pairs'])} pairs left out (missing images; listed in metrics.json: skipped_pairs)")
    if "identification" in m:
        i = m["identification"]
        dirs = "  ".join(f"DIR@FAR={f} {100 * v:.2f}%" for f, v in i["dir"].items())
        rank5 = f"  rank-5 {100 * i['rank5']:.2f}%" if "rank5" in i else ""
        print(f"rank-1 {100 * i['rank1']:.2f}%{rank5}  {dirs}")
    print(f"report: {Path(args.out) / 'report.html'}")


def _verify(args: argparse.Namespace) -> None:
    from facevox.tasks.face.evaluate import verify_photos

    result = verify_photos(args.a, args.b, model=args.model, backend=args.backend, aligned=args.aligned,
                           detector=args.detector, threshold=args.threshold, device=args.device,
                           precision=args.precision, refuse_unaligned=args.refuse_unaligned)
    if args.json:
        print(json.dumps(result))
        return
    line = f"score {result['score']:.4f}"
    if result.get("threshold") is not None:
        line += f"  decision: {'same' if result['same'] else 'different'} person (threshold {result['threshold']:.4f})"
    if "p_same" in result:
        line += f"  P(same) {result['p_same']:.3f}"
    else:
        line += "  (no threshold: give --threshold, e.g. the EER threshold from face eval's metrics.json)"
    print(line)


def _embed(args: argparse.Namespace) -> None:
    from facevox.tasks.face.evaluate import embed_source

    r = embed_source(args.source, args.out, model=args.model, backend=args.backend, device=args.device,
                     precision=args.precision, workers=args.workers, batch_size=args.batch_size,
                     skip_bad=args.skip_bad, refuse_unaligned=args.refuse_unaligned)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun every rank ends with the whole store
        print(f"{r['embedded']} of {r['files']} images in the store -> {r['store']}")


def add_commands(sub: argparse._SubParsersAction, add_set) -> None:
    """Register the face commands on the ``facevox face`` sub-parser."""
    def detector_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--detector", default="dlib", choices=["dlib", "haar"],
                       help="face detector: dlib's HOG + 5-point landmarks, or OpenCV's Haar cascades")

    p = sub.add_parser("align", help="detect and align faces to 112x112 crops (folder per identity)",
                       description="Detect, align and crop every photo of a folder-per-identity tree.")
    p.add_argument("src", help="folder per identity of photos")
    p.add_argument("--out", required=True, help="folder for the aligned crops (same tree, PNG)")
    p.add_argument("--size", type=ranged_arg(int, **IMAGE_SIZE), nargs=2, default=[112, 112], metavar=("H", "W"))
    p.add_argument("--largest", action="store_true", help="with several faces, keep the largest (else: reported)")
    p.add_argument("--aligned", action="store_true", help="photos are already aligned: only resize them")
    p.add_argument("--fallback", default="none", choices=["none", "center"],
                   help="a photo with no face found: no crop (none, listed in align_report.csv), or (center) a "
                        "centred box of the output's aspect, 0.6 of the shorter side high (150x150 of a 250x250 "
                        "photo), resized to --size; listed with status fallback_center")
    detector_arg(p)
    p.set_defaults(handler=_align)

    p = sub.add_parser("train", help="train a face embedder with a margin loss", description="Train a face embedder.")
    p.add_argument("--recipe",
                   help="YAML recipe file or built-in name, e.g. mobilefacenet_arcface (facevox list recipes)")
    p.add_argument("--data", help="folder per identity of aligned crops (same as --set data.train=...)")
    p.add_argument("--out", default="runs/face", help="run folder; the model is saved in OUT/model")
    p.add_argument("--licence", default="unknown", help="licence of the training data, for the model card")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    add_set(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("pairs", help="write an LFW-format pairs file for a folder per identity",
                       description="Write 'folds n' then per fold n same and n different pairs (LFW pairs.txt).")
    p.add_argument("root", help="folder per identity")
    p.add_argument("--out", required=True, help="pairs file to write")
    p.set_defaults(out_is_file=True)
    p.add_argument("--folds", type=ranged_arg(int, ge=1), default=10)
    p.add_argument("--per-fold", type=ranged_arg(int, ge=1), default=30,
                   help="same pairs per fold (and as many different ones)")
    p.add_argument("--identities", nargs="+", help="only these identities (folder names)")
    p.add_argument("--disjoint", default="auto", choices=["auto", "yes", "no"],
                   help="no person in two folds (LFW View 2); auto: when there are 2+ people per fold")
    p.add_argument("--seed", type=ranged_arg(int, **SEED), default=0)
    p.set_defaults(handler=_pairs)

    def scorer_args(p: argparse.ArgumentParser, default: str = "model") -> None:
        p.add_argument("--model", help="model folder (OUT/model of face train)")
        p.add_argument("--backend", default=default, choices=["auto", "model", "dlib"],
                       help="'dlib': dlib's pretrained face recognition model with facevox's calibration (pip install "
                            "\"facevox[face-baseline]\"); 'auto': the model folder if --model is given, else dlib "
                            f"(default: {default})")

    def device_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: this rank's GPU if any)")
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                       help="bf16 autocast, or auto: bf16 where the hardware has it natively")

    def extract_args(p: argparse.ArgumentParser) -> None:
        device_args(p)
        p.add_argument("--workers", type=ranged_arg(int, ge=0), default=2, help="DataLoader workers decoding images")
        p.add_argument("--batch-size", type=ranged_arg(int, ge=1), default=64, help="crops embedded together")
        p.add_argument("--skip-bad", action="store_true",
                       help="leave out images that cannot be read (listed on stderr) instead of stopping")
        refuse_arg(p)

    def refuse_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--refuse-unaligned", action="store_true",
                       help="stop with an error, instead of a warning, when images do not look like aligned face "
                            "crops (more than 1.5x the model's input size, or for dlib 1.5x 112x112, an odd aspect "
                            "ratio, or a small face found inside by dlib's detector on a sample of 20)")

    p = sub.add_parser("eval", help="LFW protocol or an InsightFace .bin: k-fold accuracy, EER, TAR@FAR, report",
                       description="Score an LFW-format pairs file of aligned crops (header 'folds n', or 'n' for "
                       "one fold as in View 1's pairsDevTest.txt), or an InsightFace validation .bin (lfw.bin, "
                       "cfp_fp.bin, agedb_30.bin: 112x112 aligned crops, 10 folds of consecutive pairs).")
    p.add_argument("pairs", help="pairs file (LFW pairs.txt format) or InsightFace .bin")
    p.add_argument("--root", help="folder per identity the pairs file refers to (aligned crops); not for a .bin")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out pairs naming a missing image (counted, listed in metrics.json) instead of stopping")
    p.add_argument("--identify", help="also run identification on this folder per identity (gallery/probe split)")
    p.add_argument("--cohort", help="AS-norm cohort: a folder per identity of people not in the pairs "
                   "(use with --asnorm-top-k; cosine models only)")
    p.add_argument("--asnorm-top-k", type=ranged_arg(int, ge=0), default=0,
                   help="AS-norm: each side's top-k cohort scores (0: off)")
    p.add_argument("--out", default="runs/face-eval")
    p.add_argument("--embeddings", help="embedding store to read and fill (from face embed)")
    scorer_args(p)
    extract_args(p)
    p.set_defaults(handler=_eval)

    p = sub.add_parser("embed", help="embed aligned face crops into an embedding store (reused by eval --embeddings)",
                       description="Embed every image of a folder, manifest CSV or list file into a store folder "
                       "(memory-mapped .npy parts + meta.json); images already there are not embedded again.")
    p.add_argument("source", help="folder (searched recursively), manifest CSV (path column) or list file of paths")
    p.add_argument("--out", required=True, help="store folder to create or add to")
    scorer_args(p)
    extract_args(p)
    p.set_defaults(handler=_embed)

    p = sub.add_parser("verify", help="are two photos the same person?",
                       description="Detect and align the face in each photo (unless --aligned); print score, "
                       "decision and P(same). With no --model, dlib's pretrained model decides with the threshold and "
                       "calibration facevox fitted on ORL (docs/model_cards/dlib.md).")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--aligned", action="store_true", help="the photos are aligned face crops")
    p.add_argument("--threshold", type=ranged_arg(float),
                   help="decision threshold (default: the model's, if it has one)")
    p.add_argument("--json", action="store_true")
    detector_arg(p)
    scorer_args(p, default="auto")
    device_args(p)
    refuse_arg(p)
    p.set_defaults(handler=_verify)
