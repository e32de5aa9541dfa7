"""``facevox speaker ...``: train, eval, embed, verify, trials. Each command is a thin call into the task."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from facevox.config import SEED, load_config, ranged_arg
from facevox.errors import FacevoxError
from facevox.tasks.speaker.scoring import MIN_SCORING_SECONDS, PAD_SECONDS


def _train(args: argparse.Namespace) -> None:
    from facevox.tasks.speaker.config import SpeakerConfig
    from facevox.tasks.speaker.train import train_speaker

    overrides = list(args.overrides) + ([f"data.train={args.data}"] if args.data else [])
    cfg = load_config(SpeakerConfig, args.recipe, overrides)
    result = train_speaker(cfg, Path(args.out), licence=args.licence, resume=not args.restart)
    print(f"model: {result['model']}  (trained in {result['train_seconds']:.0f} s)")


def _eval(args: argparse.Namespace) -> None:
    from facevox.tasks.speaker.evaluate import evaluate

    evaluate(Path(args.trials), Path(args.audio_root) if args.audio_root else None, Path(args.out),
             model=args.model, backend=args.backend, cohort=Path(args.cohort) if args.cohort else None,
             asnorm_top_k=args.asnorm_top_k, cache=not args.no_cache, embeddings=args.embeddings,
             device=args.device, precision=args.precision, workers=args.workers, batch_size=args.batch_size,
             skip_bad=args.skip_bad, vad=args.vad, min_seconds=args.min_seconds,
             identify=Path(args.identify) if args.identify else None)
    print(f"report: {Path(args.out) / 'report.html'}")


def _embed(args: argparse.Namespace) -> None:
    from facevox.tasks.speaker.evaluate import embed_source

    r = embed_source(args.source, args.out, model=args.model, backend=args.backend, device=args.device,
                     precision=args.precision, workers=args.workers, batch_size=args.batch_size,
                     skip_bad=args.skip_bad, vad=args.vad, min_seconds=args.min_seconds)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun every rank ends with the whole store
        print(f"{r['embedded']} of {r['files']} files in the store ({r['new']} new) -> {r['store']}")


def _attack(args: argparse.Namespace) -> None:
    from facevox.attacks.speaker_run import attack_speakers

    doc = attack_speakers(args.model, args.data, args.out, mode=args.mode, attacks=args.attack, snr_db=args.snr_db,
                          targeted=args.targeted, enrol=args.enrol, seconds=args.seconds, max_probes=args.max_probes,
                          pgd_steps=args.pgd_steps, foolhd=args.foolhd, foolhd_steps=args.foolhd_steps,
                          threshold=args.threshold, examples=args.examples, perceptual=not args.no_perceptual)
    from facevox.attacks.report import summary_lines

    print("\n".join(summary_lines(doc)))
    print(f"report: {Path(args.out) / 'report.html'}")


def _verify(args: argparse.Namespace) -> None:
    from facevox.tasks.speaker.evaluate import SpeakerScorer

    scorer = SpeakerScorer(args.model, args.backend, use="speaker verify", device=args.device,
                           precision=args.precision, vad=args.vad, min_seconds=args.min_seconds)
    result = scorer.verify(Path(args.a), Path(args.b))
    if args.json:
        print(json.dumps(result))
        return
    line = f"score {result['score']:.4f}"
    if "same" in result:
        line += f"  decision {'same' if result['same'] else 'different'} speaker (threshold {result['threshold']:.4f})"
    if "p_same" in result:
        line += f"  P(same) {result['p_same']:.3f}"
    if "same" not in result:
        line += "  (no calibrated threshold stored in this model: compare scores, or train with data.calib_speakers)"
    print(line)


def _trials(args: argparse.Namespace) -> None:
    from facevox.tasks.speaker.corpus import make_trials, read_corpus, read_metadata, write_trials

    if args.hard_negatives != "none" and args.mode != "sampled":
        raise FacevoxError("hard negatives are for sampled trials (--mode sampled --n N)", "--hard-negatives")
    corpus = read_corpus(args.corpus)
    metadata = read_metadata(args.metadata, "sex") if args.metadata else None
    embeddings = None
    if args.hard_negatives == "nearest":
        embeddings = _speaker_means(args, corpus)
    trials = make_trials(corpus, mode=args.mode, n=args.n, target_fraction=args.target_fraction,
                         hard_negatives=args.hard_negatives, metadata=metadata, embeddings=embeddings, seed=args.seed)
    write_trials(args.out, trials)
    n_target = sum(t.label for t in trials)
    print(f"{len(trials)} trials ({n_target} target, {len(trials) - n_target} non-target) -> {args.out}")


def _speaker_means(args: argparse.Namespace, corpus) -> dict:
    import numpy as np

    from facevox.tasks.speaker.evaluate import SpeakerScorer
    from facevox.tasks.speaker.scoring import embed_files

    scorer = SpeakerScorer(args.model, args.backend, use="speaker trials")
    if scorer.kind == "pair":
        raise FacevoxError("nearest-speaker hard negatives need an embedding model, not a pair classifier", "--model")
    emb = embed_files([u.path for u in corpus.utterances], scorer.embed)
    return {s: np.mean([emb[u.path] for u in us], axis=0) for s, us in corpus.by_speaker().items()}


def add_commands(sub: argparse._SubParsersAction, add_set) -> None:
    """Register the speaker commands on the ``facevox speaker`` sub-parser."""
    p = sub.add_parser("train", help="train a speaker model from a recipe", description="Train a speaker model.")
    p.add_argument("--recipe", help="YAML recipe file or built-in name, e.g. ecapa_mmp (facevox list recipes)")
    p.add_argument("--data", help="training corpus folder or manifest (same as --set data.train=...)")
    p.add_argument("--out", default="runs/speaker", help="run folder; the model is saved in OUT/model")
    p.add_argument("--licence", default="unknown", help="licence of the training data, for the model card")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in OUT instead of resuming")
    add_set(p)
    p.set_defaults(handler=_train)

    def scorer_args(p: argparse.ArgumentParser, default: str = "model") -> None:
        p.add_argument("--model", help="model folder (OUT/model of speaker train)")
        p.add_argument("--backend", default=default, choices=["auto", "model", "resemblyzer"],
                       help="'resemblyzer': its pretrained encoder as shipped, with facevox's calibration "
                            "(pip install \"facevox[speaker-baseline]\"); 'auto': the model folder if --model is "
                            f"given, else resemblyzer (default: {default})")

    def vad_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--vad", action="store_true",
                       help="trim each recording to its speech with silero-vad before embedding "
                            "(needs the silero-vad package: pip install silero-vad)")
        p.add_argument("--min-seconds", type=ranged_arg(float, gt=0), default=MIN_SCORING_SECONDS,
                       help="shorter recordings are an error (skipped with --skip-bad); recordings under "
                            f"{PAD_SECONDS:g} s that this allows are tiled (repeated end to end) to {PAD_SECONDS:g} s "
                            f"before embedding (default: {MIN_SCORING_SECONDS:g}; like training's data.min_seconds)")

    def device_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: this rank's GPU if any)")
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                       help="bf16 autocast, or auto: bf16 where the hardware has it natively")

    def extract_args(p: argparse.ArgumentParser) -> None:
        device_args(p)
        p.add_argument("--workers", type=ranged_arg(int, ge=0), default=2, help="DataLoader workers decoding audio")
        p.add_argument("--batch-size", type=ranged_arg(int, ge=1), default=32,
                       help="chunks of one length embedded together")
        p.add_argument("--skip-bad", action="store_true",
                       help="leave out files that cannot be read (listed on stderr) instead of stopping")

    p = sub.add_parser("eval", help="score a trial list: EER, minDCF, DET/ROC, HTML report",
                       description="Evaluate on a trial list: VoxCeleb's form ('1 a.wav b.wav' per line; "
                       "VoxCeleb1-O/E/H as distributed) or Kaldi/WeSpeaker's ('a.wav b.wav target|nontarget').")
    p.add_argument("trials", help="trial list (VoxCeleb or Kaldi form)")
    p.add_argument("--audio-root", help="folder the trial paths are relative to (default: the list's folder)")
    p.add_argument("--out", default="runs/speaker-eval")
    p.add_argument("--cohort", help="corpus folder for AS-norm (use with --asnorm-top-k)")
    p.add_argument("--asnorm-top-k", type=ranged_arg(int, ge=0), default=0)
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store embeddings")
    p.add_argument("--embeddings", help="embedding store to read and fill (from speaker embed) instead of the cache")
    p.add_argument("--identify", help="also run identification on this corpus folder: the first half of the speakers "
                   "(sorted) enrolled with their first recording, every other recording a probe (rank-1/5, DIR@FAR)")
    scorer_args(p)
    vad_arg(p)
    extract_args(p)
    p.set_defaults(handler=_eval)

    p = sub.add_parser("embed", help="embed audio files into an embedding store (reused by eval --embeddings)",
                       description="Embed every audio file of a folder, manifest CSV or list file into a store "
                       "folder (memory-mapped .npy parts + meta.json); files already there are not embedded again.")
    p.add_argument("source", help="folder (searched recursively), manifest CSV (path column) or list file of paths")
    p.add_argument("--out", required=True, help="store folder to create or add to")
    scorer_args(p)
    vad_arg(p)
    extract_args(p)
    p.set_defaults(handler=_embed)

    p = sub.add_parser("verify", help="are two recordings the same speaker?",
                       description="Score two recordings; print score, decision and calibrated probability. With no "
                       "--model, Resemblyzer's pretrained encoder decides with the threshold and calibration "
                       "facevox fitted on LibriSpeech (docs/model_cards/resemblyzer.md).")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    scorer_args(p, default="auto")
    vad_arg(p)
    device_args(p)
    p.set_defaults(handler=_verify)

    p = sub.add_parser("attack", help="adversarial attacks (FGSM, PGD, FoolHD) on a speaker model: success, PESQ, "
                       "STOI, report",
                       description="Attack a speaker embedding model on a corpus folder: each speaker's first "
                       "--enrol recordings enrol it, the others are probes. Identification (closed set) or "
                       "verification (a target trial rejected, a non-target accepted). Writes results.csv, "
                       "metrics.json, accuracy.png, examples/ (WAV) and report.html.")
    p.add_argument("data", help="corpus folder (one sub-folder per speaker) or manifest CSV")
    p.add_argument("--model", required=True, help="speaker model folder (embedding kind)")
    p.add_argument("--out", default="runs/speaker-attack")
    p.add_argument("--mode", default="identification", choices=["identification", "verification"])
    p.add_argument("--attack", nargs="+", default=["fgsm", "pgd"], choices=["fgsm", "pgd", "foolhd"])
    p.add_argument("--snr-db", nargs="+", type=ranged_arg(float, gt=0), default=[20.0, 30.0, 40.0],
                   help="budgets of FGSM and PGD: the perturbation this many dB below the signal (L2)")
    p.add_argument("--targeted", action="store_true", help="identification: aim at the next speaker (sorted)")
    p.add_argument("--enrol", type=ranged_arg(int, ge=1), default=1, help="recordings per speaker that enrol it")
    p.add_argument("--seconds", type=ranged_arg(float, gt=0), default=2.0, help="probe length (first S seconds)")
    p.add_argument("--max-probes", type=ranged_arg(int, ge=0), default=0, help="probes per speaker (0: all)")
    p.add_argument("--pgd-steps", type=ranged_arg(int, ge=1), default=10)
    p.add_argument("--foolhd", help="a trained FoolHD autoencoder (.safetensors); default: train one against "
                   "this victim on the enrolment recordings")
    p.add_argument("--foolhd-steps", type=ranged_arg(int, ge=1), default=300)
    p.add_argument("--threshold", type=float, help="verification threshold (default: the model's calibrated one)")
    p.add_argument("--examples", type=ranged_arg(int, ge=0), default=4, help="examples saved as WAV")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ and STOI (slow on long runs)")
    p.set_defaults(handler=_attack)

    p = sub.add_parser("trials", help="make a trial list from a corpus",
                       description="Write VoxCeleb-format trials: all pairs, or sampled with a target fraction.")
    p.add_argument("corpus", help="corpus folder (one sub-folder per speaker) or manifest CSV")
    p.add_argument("--out", required=True, help="trial list to write")
    p.set_defaults(out_is_file=True)
    p.add_argument("--mode", default="all", choices=["all", "sampled"])
    p.add_argument("--n", type=ranged_arg(int, ge=2), help="number of trials (sampled mode)")
    p.add_argument("--target-fraction", type=ranged_arg(float, gt=0, lt=1), default=0.38,
                   help="share of same-speaker trials (sampled)")
    p.add_argument("--hard-negatives", default="none", choices=["none", "sex", "nearest"])
    p.add_argument("--metadata", help="speaker metadata: CSV speaker,sex or LibriSpeech SPEAKERS.TXT")
    p.add_argument("--seed", type=ranged_arg(int, **SEED), default=0)
    scorer_args(p)
    p.set_defaults(handler=_trials)
