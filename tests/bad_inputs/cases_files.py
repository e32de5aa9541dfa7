"""Input files and folders: missing, empty, undecodable audio and images, text that is not UTF-8,
non-UTF-8 file names, bad trial, pairs, manifest and score files."""

from __future__ import annotations

import os

from bad_inputs import files
from bad_inputs.commands import fa_eval, fa_train, fa_verify, ff_eval, ff_predict, ff_train, in_run, sp_eval, sp_train
from bad_inputs.harness import Case, Env

U = files.NOT_UTF8


def corpus_with(e: Env, name: str, make) -> str:
    """A copy of the fixture corpus with one more file ``spk000/<name>`` made by ``make(path)``."""
    root = e.copy(e.fx.corpus, "corpus")
    make(root / "spk000" / name)
    return str(root)


def images_with(e: Env, name: str, make) -> str:
    """A copy of the fixture images with one more file ``fake/<name>``."""
    root = e.copy(e.fx.images, "images")
    make(root / "fake" / name)
    return str(root)


def people_with(e: Env, name: str, make) -> str:
    root = e.copy(e.fx.people, "people")
    make(root / "p1" / name)
    return str(root)


def people_replaced(e: Env, rel: str, make) -> str:
    """A copy of the fixture people with ``rel`` replaced by ``make(path)``."""
    root = e.copy(e.fx.people, "people")
    (root / rel).unlink()
    make(root / rel)
    return str(root)


def people_plus(e: Env, identity: str) -> str:
    """A copy of the fixture people with one more identity (a copy of p0) named ``identity``."""
    root = e.copy(e.fx.people, "people")
    e.copy(e.fx.people / "p0", f"people/{identity}")
    return str(root)


def labelled(e: Env, name: str, n_real: int, n_fake: int) -> str:
    """A folder ``name`` with real/ and fake/ holding that many generated PNGs."""
    for label, n in (("real", n_real), ("fake", n_fake)):
        e.path(f"{name}/{label}").mkdir(parents=True)
        for i in range(n):
            files.png(e.path(f"{name}/{label}/{i}.png"), seed=i + 10 * n_real)
    return str(e.path(name))


def good_wav(path) -> None:
    files.wav(path, files.noise(1.0))


def empty_dir(e: Env, name: str = "empty") -> str:
    e.path(name).mkdir()
    return str(e.path(name))


def trials(e: Env, name: str, text: str | bytes) -> str:
    return str(e.write(name, text))


GOOD = "1 spk000/utt00.wav spk000/utt01.wav\n0 spk000/utt00.wav spk001/utt00.wav\n"

CASES = [
    # ---- missing and empty
    Case("speaker-train-data-missing", "--data names no folder", "no_corpus",
         lambda e: sp_train(e, data=e.path("no_corpus"))),
    Case("speaker-train-data-empty", "--data is an empty folder", "empty", lambda e: sp_train(e, data=empty_dir(e))),
    Case("speaker-train-no-data", "no --data and no data.train", "data.train",
         lambda e: ["speaker", "train", "--out", str(e.out), "--set", "train.epochs=1"]),
    Case("speaker-train-one-speaker", "a corpus of one speaker", "one_speaker",
         lambda e: sp_train(e, data=str(e.copy(e.fx.corpus / "spk000", "one_speaker/spk000").parent))),
    Case("speaker-eval-trials-missing", "the trial list does not exist", "no_trials.txt",
         lambda e: sp_eval(e, trials=e.path("no_trials.txt"))),
    Case("speaker-verify-audio-missing", "verify a file that does not exist", "ghost.wav",
         lambda e: ["speaker", "verify", str(e.path("ghost.wav")), str(e.fx.wav_b), "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-model-backend-no-model", "verify with --backend model but no --model", "--model",
         lambda e: ["speaker", "verify", str(e.fx.wav_a), str(e.fx.wav_b), "--backend", "model"]),
    Case("speaker-trials-corpus-empty", "trials from an empty folder", "empty",
         lambda e: ["speaker", "trials", empty_dir(e), "--out", str(e.path("t.txt"))]),
    Case("fakeface-train-data-empty", "--data: an empty folder (no real/ fake/)", "empty",
         lambda e: ff_train(e, data=empty_dir(e))),
    Case("fakeface-train-classes-empty", "--data: real/ and fake/ with no images", "real",
         lambda e: ff_train(e, data=labelled(e, "d", 0, 0))),
    Case("fakeface-train-too-few-images", "two images per class", "few",
         lambda e: ff_train(e, data=labelled(e, "few", 2, 2))),
    Case("fakeface-predict-missing", "predict a file that does not exist", "nope.png",
         lambda e: ff_predict(e, e.path("nope.png"))),
    Case("fakeface-predict-empty-folder", "predict an empty folder", "empty",
         lambda e: ff_predict(e, empty_dir(e))),
    Case("fakeface-eval-data-missing", "eval --data that does not exist", "nope.csv",
         lambda e: ff_eval(e, data=e.path("nope.csv"))),
    Case("fakeface-eval-one-class", "eval on a folder whose fake/ holds no images", "fake",
         lambda e: ff_eval(e, data=labelled(e, "d", 3, 0))),
    Case("face-train-data-empty", "face train on an empty folder", "empty", lambda e: fa_train(e, data=empty_dir(e))),
    Case("face-train-images-at-root", "images directly under the root, not per identity", "flat",
         lambda e: fa_train(e, data=str(files.png(e.path("flat/a.png")).parent))),
    Case("face-eval-pairs-missing", "the pairs file does not exist", "no_pairs.txt",
         lambda e: fa_eval(e, pairs=e.path("no_pairs.txt"))),
    Case("face-eval-identify-empty", "--identify names an empty folder", "empty",
         lambda e: fa_eval(e, opts=["--identify", empty_dir(e)])),
    Case("face-verify-photo-missing", "verify a photo that does not exist", "nobody.png",
         lambda e: fa_verify(e, a=e.path("nobody.png"))),
    Case("face-align-src-empty", "align an empty folder", "empty",
         lambda e: ["face", "align", empty_dir(e), "--out", str(e.out), "--aligned"]),
    Case("face-pairs-unknown-identity", "--identities names nobody in the folder", ("nobody", "--identities"),
         lambda e: ["face", "pairs", str(e.fx.people), "--out", str(e.path("p.txt")), "--identities", "nobody",
                    "--folds", "1", "--per-fold", "1"]),
    Case("invert-run-image-missing", "invert a file that does not exist", "nope.png",
         lambda e: in_run(e, e.path("nope.png"))),
    Case("invert-run-empty-folder", "invert an empty folder", "empty", lambda e: in_run(e, empty_dir(e))),
    Case("invert-eval-images-empty", "invert eval --images on an empty folder", "empty",
         lambda e: ["invert", "eval", "--methods", "optim", "--images", empty_dir(e), "--generator",
                    "bad_inputs_gen:tiny", "--nz", "8", "--device", "cpu", "--steps", "2", "--out", str(e.out)]),
    Case("invert-run-weights-missing", "--weights names no file", "no_weights.pt",
         lambda e: in_run(e, opts=["--weights", str(e.path("no_weights.pt"))])),
    Case("eval-scores-missing", "eval-scores on a file that does not exist", "no_scores.txt",
         lambda e: ["eval-scores", str(e.path("no_scores.txt")), "--out", str(e.out)]),
    # ---- audio
    Case("speaker-verify-corrupt-wav", "a WAV header followed by junk", "corrupt.wav",
         lambda e: ["speaker", "verify", str(files.corrupt_wav(e.path("corrupt.wav"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-junk-m4a", "text named .m4a (AAC, as VoxCeleb2 ships)", "junk.m4a",
         lambda e: ["speaker", "verify", str(e.write("junk.m4a", b"not an mp4 container")), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-empty-m4a", "a zero-byte .m4a", "zero.m4a",
         lambda e: ["speaker", "verify", str(e.write("zero.m4a", b"")), str(e.fx.wav_b), "--model",
                    str(e.fx.model_sp)]),
    Case("speaker-verify-cut-m4a", "an .m4a cut in half (its index lost)", "cut.m4a",
         lambda e: ["speaker", "verify", str(files.cut_m4a(e.path("cut.m4a"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-train-cut-m4a-in-corpus", "one cut .m4a in the training corpus", "cut.m4a",
         lambda e: sp_train(e, data=corpus_with(e, "cut.m4a", files.cut_m4a))),
    Case("speaker-verify-empty-wav", "a zero-byte .wav", "zero.wav",
         lambda e: ["speaker", "verify", str(e.write("zero.wav", b"")), str(e.fx.wav_b), "--model",
                    str(e.fx.model_sp)]),
    Case("speaker-verify-silent-wav", "digital silence", "silent.wav",
         lambda e: ["speaker", "verify", str(files.silent_wav(e.path("silent.wav"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-short-wav", "10 ms of audio", "short.wav",
         lambda e: ["speaker", "verify", str(files.short_wav(e.path("short.wav"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-one-hz-header", "a WAV whose header claims 1 Hz", "one_hz.wav",
         lambda e: ["speaker", "verify", str(files.one_hz_wav(e.path("one_hz.wav"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-verify-png-as-wav", "a PNG named .wav", "picture.wav",
         lambda e: ["speaker", "verify", str(files.png(e.path("picture.wav"))), str(e.fx.wav_b),
                    "--model", str(e.fx.model_sp)]),
    Case("speaker-train-corrupt-in-corpus", "one corrupt file in the training corpus", "broken.wav",
         lambda e: sp_train(e, data=corpus_with(e, "broken.wav", files.corrupt_wav))),
    Case("speaker-train-nan-in-corpus", "a float WAV with NaN samples in the corpus", "nan.wav",
         lambda e: sp_train(e, data=corpus_with(e, "nan.wav", files.nan_wav))),
    Case("speaker-train-one-hz-in-corpus", "a 1 Hz file in the training corpus", "one_hz.wav",
         lambda e: sp_train(e, data=corpus_with(e, "one_hz.wav", files.one_hz_wav))),
    Case("speaker-train-silent-in-corpus", "a silent file in the training corpus", "silent.wav",
         lambda e: sp_train(e, data=corpus_with(e, "silent.wav", files.silent_wav))),
    Case("speaker-eval-trial-names-silent", "a trial naming a silent file", "silent.wav",
         lambda e: sp_eval(e, trials=trials(e, "t.txt", GOOD + f"1 spk000/utt00.wav "
                                                          f"{files.silent_wav(e.path('silent.wav'))}\n"))),
    # ---- images
    Case("fakeface-predict-truncated", "a PNG cut short", "truncated.png",
         lambda e: ff_predict(e, files.truncated_png(e.path("truncated.png")))),
    Case("fakeface-predict-zero-bytes", "a zero-byte .png", "zero.png",
         lambda e: ff_predict(e, e.write("zero.png", b""))),
    Case("fakeface-predict-text-as-png", "a text file named .png", "text.png",
         lambda e: ff_predict(e, e.write("text.png", "not an image\n"))),
    Case("fakeface-predict-bomb", "a 60000x60000 PNG of a few dozen bytes", "bomb.png",
         lambda e: ff_predict(e, files.bomb_png(e.path("bomb.png")))),
    Case("fakeface-train-bomb-in-data", "a decompression bomb among the training images", "bomb.png",
         lambda e: ff_train(e, data=images_with(e, "bomb.png", files.bomb_png))),
    Case("fakeface-eval-truncated-in-data", "a truncated image in the evaluated folder", "truncated.png",
         lambda e: ff_eval(e, data=images_with(e, "truncated.png", files.truncated_png))),
    Case("fakeface-explain-zero-bytes", "explain a zero-byte image", "zero.png",
         lambda e: ["fakeface", "explain", str(e.write("zero.png", b"")), "--model", str(e.fx.model_ff),
                    "--methods", "gradient", "--out", str(e.out)]),
    Case("face-verify-bomb", "verify a decompression bomb", "bomb.png",
         lambda e: fa_verify(e, a=files.bomb_png(e.path("bomb.png")))),
    Case("face-train-truncated-in-data", "a truncated crop among the training images", "truncated.png",
         lambda e: fa_train(e, data=people_with(e, "truncated.png", files.truncated_png))),
    Case("face-eval-bomb-in-root", "a decompression bomb in place of an evaluated crop", "1.png",
         lambda e: fa_eval(e, root=people_replaced(e, "p0/1.png", files.bomb_png))),
    Case("invert-run-bomb", "invert a decompression bomb", "bomb.png",
         lambda e: in_run(e, files.bomb_png(e.path("bomb.png")))),
    Case("invert-run-truncated", "invert a truncated image", "truncated.png",
         lambda e: in_run(e, files.truncated_png(e.path("truncated.png")))),
    # ---- text that is not UTF-8
    Case("speaker-eval-trials-not-utf8", "a trial list with Latin-1 bytes", "latin1_trials.txt",
         lambda e: sp_eval(e, trials=trials(e, "latin1_trials.txt", GOOD.encode() + b"# " + U + b"\n"))),
    Case("speaker-train-manifest-not-utf8", "a manifest CSV with a Latin-1 speaker name", "latin1.csv",
         lambda e: sp_train(e, data=e.write("latin1.csv", b"path,speaker\n" + b"".join(
             f"{e.fx.corpus}/spk00{s}/utt0{u}.wav,".encode() + (b"caf\xe9" if s == 0 else b"bob") + b"\n"
             for s in range(2) for u in range(3))))),
    Case("fakeface-train-manifest-not-utf8", "a manifest CSV with Latin-1 bytes", "latin1.csv",
         lambda e: ff_train(e, data=e.write("latin1.csv", b"path,label,group\n" + b"".join(
             f"{p},{c},".encode() + U + b"\n" for c in ("real", "fake")
             for p in sorted((e.fx.images / c).glob("*.png")))))),
    Case("fakeface-eval-split-not-utf8", "a split file with Latin-1 bytes", "latin1_split.csv",
         lambda e: ff_eval(e, data=e.write("latin1_split.csv", e.fx.split_ff.read_bytes().replace(
             b"path,label,split", b"path,label,split,note").replace(b",val\n", b",val," + U + b"\n")))),
    Case("face-eval-pairs-not-utf8", "a pairs file with Latin-1 bytes", "latin1_pairs.txt",
         lambda e: fa_eval(e, pairs=e.write("latin1_pairs.txt", e.fx.pairs.read_bytes() + b"# " + U + b"\n"))),
    Case("eval-scores-not-utf8", "a score file with Latin-1 bytes", "latin1_scores.txt",
         lambda e: ["eval-scores", str(e.write("latin1_scores.txt", e.fx.scores.read_bytes() + b"0.5 1 " + U + b"\n")),
                    "--out", str(e.out)]),
    Case("speaker-trials-name-not-utf8", "a corpus file whose name is not UTF-8 (cannot go in a trial list)",
         "name.wav", lambda e: ["speaker", "trials", corpus_with(e, os.fsdecode(b"\xffname.wav"), good_wav),
                                "--out", str(e.path("t.txt"))]),
    Case("face-pairs-identity-not-utf8", "an identity folder whose name is not UTF-8", "person",
         lambda e: ["face", "pairs", people_plus(e, os.fsdecode(b"\xe9person")), "--out", str(e.path("p.txt")),
                    "--folds", "1", "--per-fold", "1"]),
    Case("fakeface-train-image-name-not-utf8", "a training image whose name is not UTF-8 (cannot go in split.csv)",
         "image.png", lambda e: ff_train(e, data=images_with(e, os.fsdecode(b"\xffimage.png"), files.png))),
    Case("speaker-trials-metadata-not-utf8", "speaker metadata (speaker,sex) with Latin-1 bytes", "latin1_meta.csv",
         lambda e: ["speaker", "trials", str(e.fx.corpus), "--out", str(e.path("t.txt")), "--mode", "sampled",
                    "--n", "10", "--hard-negatives", "sex", "--metadata",
                    str(e.write("latin1_meta.csv", b"speaker,sex,note\n" + b"".join(
                        f"spk00{i},{'mf'[i % 2]},".encode() + U + b"\n" for i in range(4))))]),
    # ---- trial lists, pairs files, manifests, score files
    Case("speaker-eval-trial-two-columns", "a trial line with two columns", "cols.txt",
         lambda e: sp_eval(e, trials=trials(e, "cols.txt", GOOD + "1 spk000/utt00.wav\n"))),
    Case("speaker-eval-trial-bad-label", "a trial labelled 2", "label.txt",
         lambda e: sp_eval(e, trials=trials(e, "label.txt", GOOD + "2 spk000/utt00.wav spk000/utt01.wav\n"))),
    Case("speaker-eval-trials-one-class", "only target trials", "targets.txt",
         lambda e: sp_eval(e, trials=trials(e, "targets.txt", "1 spk000/utt00.wav spk000/utt01.wav\n"))),
    Case("speaker-eval-trials-empty", "an empty trial list", "empty.txt",
         lambda e: sp_eval(e, trials=trials(e, "empty.txt", ""))),
    Case("speaker-eval-trial-names-missing-file", "a trial naming a file that does not exist", "ghost.wav",
         lambda e: sp_eval(e, trials=trials(e, "t.txt", GOOD + "0 spk000/utt00.wav spk001/ghost.wav\n"))),
    Case("speaker-eval-trials-a-folder", "the trial list is a folder", "folder_trials",
         lambda e: sp_eval(e, trials=empty_dir(e, "folder_trials"))),
    Case("speaker-train-manifest-no-speaker-column", "a manifest without the speaker column", "nocol.csv",
         lambda e: sp_train(e, data=e.write("nocol.csv", f"path,who\n{e.fx.wav_a},a\n"))),
    Case("fakeface-train-manifest-bad-label", "a manifest label that is not real/fake", "labels.csv",
         lambda e: ff_train(e, data=e.write("labels.csv", f"path,label\n{e.fx.photo},maybe\n"))),
    Case("face-eval-pairs-header-mismatch", "a pairs file whose header promises more pairs", "short_pairs.txt",
         lambda e: fa_eval(e, pairs=e.write("short_pairs.txt", "1\t5\np0\t1\t2\n"))),
    Case("face-eval-pairs-unknown-person", "a pair naming a person not under --root", "stranger",
         lambda e: fa_eval(e, pairs=e.write("p.txt", "1\t1\nstranger\t1\t2\np0\t1\tp1\t1\n"))),
    Case("eval-scores-one-class", "every trial a target", "one_class.txt",
         lambda e: ["eval-scores", str(e.write("one_class.txt", "0.9 1\n0.8 1\n0.7 1\n")), "--out", str(e.out)]),
    Case("eval-scores-non-numeric", "scores that are words", "words.txt",
         lambda e: ["eval-scores", str(e.write("words.txt", "high 1\nlow 0\n")), "--out", str(e.out)]),
    Case("eval-scores-empty", "an empty score file", "empty.txt",
         lambda e: ["eval-scores", str(e.write("empty.txt", "")), "--out", str(e.out)]),
    Case("eval-scores-nan", "a NaN score", "nan_scores.txt",
         lambda e: ["eval-scores", str(e.write("nan_scores.txt", "0.9 1\nnan 0\n0.2 0\n0.7 1\n")), "--out",
                    str(e.out)]),
    Case("eval-scores-inf", "an infinite score", "inf_scores.txt",
         lambda e: ["eval-scores", str(e.write("inf_scores.txt", "0.9 1\ninf 0\n0.2 0\n0.7 1\n")), "--out",
                    str(e.out)]),
    Case("face-eval-pairs-index-not-int", "a pair whose image numbers are words", "words_pairs.txt",
         lambda e: fa_eval(e, pairs=e.write("words_pairs.txt", "1\t1\np0\tone\ttwo\np0\t1\tp1\t1\n"))),
    Case("fakeface-train-split-bad-name", "a split file naming a split that is not train/val/test", "split.csv",
         lambda e: ff_train(e, opts=["--split", str(e.write("split.csv", e.fx.split_ff.read_text().replace(
             ",val", ",holdout").replace("../images", str(e.fx.images))))])),
    Case("speaker-eval-cohort-empty", "AS-norm with an empty cohort folder", "empty",
         lambda e: sp_eval(e, opts=["--cohort", empty_dir(e), "--asnorm-top-k", "2"])),
    Case("eval-scores-ragged", "a line with an extra column", "ragged.txt",
         lambda e: ["eval-scores", str(e.write("ragged.txt", "0.9 1\n0.1 0 extra\n")), "--out", str(e.out)]),
]
