"""Output paths that cannot be written: an existing file, a path below a file, a folder the process may
not write (``/sys``: even root may not create files there), the input folder itself; and argument
errors that argparse reports."""

from __future__ import annotations

from pathlib import Path

from bad_inputs import files
from bad_inputs.commands import fa_eval, fa_train, ff_eval, ff_predict, ff_train, in_run, sp_eval, sp_train
from bad_inputs.harness import Case, Env

UNWRITABLE = Path("/sys/facevox-bad-inputs")  # the kernel refuses new entries in /sys, whoever asks


def a_file(e: Env) -> Path:
    return e.write("a_file.txt", "a user's file\n")


def with_out(argv: list[str], out: Path | str) -> list[str]:
    """``argv`` with the value after ``--out`` replaced."""
    i = argv.index("--out")
    return argv[: i + 1] + [str(out)] + argv[i + 2 :]


def aligned_copy(e: Env) -> Path:
    return e.copy(e.fx.people, "photos")


CASES = [
    # ---- --out is an existing file
    Case("speaker-train-out-is-file", "train --out an existing file", "a_file.txt",
         lambda e: with_out(sp_train(e), a_file(e))),
    Case("speaker-eval-out-is-file", "eval --out an existing file", "a_file.txt",
         lambda e: with_out(sp_eval(e), a_file(e))),
    Case("fakeface-eval-out-is-file", "eval --out an existing file", "a_file.txt",
         lambda e: with_out(ff_eval(e), a_file(e))),
    Case("face-eval-out-is-file", "eval --out an existing file", "a_file.txt",
         lambda e: with_out(fa_eval(e), a_file(e))),
    Case("invert-run-out-is-file", "run --out an existing file", "a_file.txt",
         lambda e: with_out(in_run(e), a_file(e))),
    Case("eval-scores-out-is-file", "eval-scores --out an existing file", "a_file.txt",
         lambda e: ["eval-scores", str(e.fx.scores), "--out", str(a_file(e))]),
    Case("face-align-out-is-file", "align --out an existing file", "a_file.txt",
         lambda e: ["face", "align", str(e.fx.people), "--aligned", "--out", str(a_file(e))]),
    Case("demo-out-is-file", "demo --out an existing file", "a_file.txt",
         lambda e: ["demo", "--out", str(a_file(e)), "--set", "corpus.train_speakers=3"]),
    # ---- --out below a file
    Case("speaker-trials-out-below-file", "trials --out a_file.txt/trials.txt", "a_file.txt",
         lambda e: ["speaker", "trials", str(e.fx.corpus), "--out", str(a_file(e) / "trials.txt")]),
    Case("fakeface-predict-out-below-file", "predict --out a_file.txt/p.json", "a_file.txt",
         lambda e: ff_predict(e, opts=["--out", str(a_file(e) / "p.json")])),
    Case("face-pairs-out-below-file", "pairs --out a_file.txt/pairs.txt", "a_file.txt",
         lambda e: ["face", "pairs", str(e.fx.people), "--out", str(a_file(e) / "pairs.txt"), "--folds", "1",
                    "--per-fold", "2"]),
    Case("fakeface-train-out-below-file", "train --out a_file.txt/run", "a_file.txt",
         lambda e: ff_train(e, out=a_file(e) / "run")),
    Case("face-eval-out-below-file", "eval --out a_file.txt/eval", "a_file.txt",
         lambda e: with_out(fa_eval(e), a_file(e) / "eval")),
    Case("fakeface-predict-out-bad-suffix", "predict --out p.txt (neither .json nor .csv)", "p.txt",
         lambda e: ff_predict(e, opts=["--out", str(e.path("p.txt"))])),
    # ---- a folder that cannot be written
    Case("speaker-train-out-unwritable", "train --out in a folder nobody may write", str(UNWRITABLE),
         lambda e: sp_train(e, out=UNWRITABLE / "run")),
    Case("face-train-out-unwritable", "train --out a folder nobody may write", str(UNWRITABLE),
         lambda e: fa_train(e, out=UNWRITABLE)),
    Case("speaker-eval-out-unwritable", "eval --out a folder nobody may write", str(UNWRITABLE),
         lambda e: with_out(sp_eval(e), UNWRITABLE)),
    Case("invert-run-out-unwritable", "run --out a folder nobody may write", str(UNWRITABLE),
         lambda e: with_out(in_run(e), UNWRITABLE)),
    Case("face-pairs-out-unwritable", "pairs --out a file in a folder nobody may write", str(UNWRITABLE),
         lambda e: ["face", "pairs", str(e.fx.people), "--out", str(UNWRITABLE / "pairs.txt"), "--folds", "1",
                    "--per-fold", "2"]),
    Case("eval-scores-out-unwritable", "eval-scores --out a folder nobody may write", str(UNWRITABLE),
         lambda e: ["eval-scores", str(e.fx.scores), "--out", str(UNWRITABLE)]),
    # ---- --out that would overwrite inputs
    Case("face-align-out-is-src-aligned", "align --aligned SRC --out SRC (would overwrite the photos)", "photos",
         lambda e: ["face", "align", str(aligned_copy(e)), "--out", str(e.path("photos")), "--aligned"]),
    Case("face-align-out-inside-src-aligned", "align --aligned SRC --out SRC/crops", "photos",
         lambda e: ["face", "align", str(aligned_copy(e)), "--out", str(e.path("photos/crops")), "--aligned"]),
    Case("face-align-out-is-src-haar", "align SRC --out SRC with a detector", "photos",
         lambda e: ["face", "align", str(aligned_copy(e)), "--out", str(e.path("photos")), "--detector", "haar"]),
    Case("fakeface-eval-out-is-run-folder", "eval --out a run folder (holds a model)", "run",
         lambda e: with_out(ff_eval(e), e.copy(e.fx.run_fa, "run"))),
    Case("speaker-eval-out-is-data", "eval --out the folder of audio it reads", "corpus",
         lambda e: with_out(sp_eval(e), e.copy(e.fx.corpus, "corpus"))),
    # ---- argument errors (argparse's one line)
    Case("list-unknown-kind", "list a kind that does not exist", "nonsense", lambda e: ["list", "nonsense"]),
    Case("list-unknown-option", "list --bogus", "--bogus", lambda e: ["list", "--bogus"]),
    Case("speaker-unknown-command", "speaker frobnicate", "frobnicate", lambda e: ["speaker", "frobnicate"]),
    Case("speaker-eval-no-trials", "eval without its trial list", "trials",
         lambda e: ["speaker", "eval", "--model", str(e.fx.model_sp), "--out", str(e.out)]),
    Case("face-align-no-out", "align without --out", "--out", lambda e: ["face", "align", str(e.fx.people)]),
    Case("invert-run-unknown-method", "run --method nope", "--method",
         lambda e: in_run(e, opts=["--method", "nope"])),
    Case("fakeface-explain-unknown-method", "explain --methods lime", "--methods",
         lambda e: ["fakeface", "explain", str(e.fx.photo), "--model", str(e.fx.model_ff), "--methods", "lime",
                    "--out", str(e.out)]),
    Case("face-train-recipe-is-folder", "--recipe names a folder", "recipe_dir",
         lambda e: fa_train(e, opts=["--recipe", str(files.write(e.path("recipe_dir/x.yaml"), "").parent)])),
]
