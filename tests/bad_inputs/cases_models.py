"""Model folders of the wrong task (in every direction), damaged model folders, run folders that must
not be resumed (a malicious checkpoint, changed settings), and bad generator specs."""

from __future__ import annotations

from pathlib import Path

from bad_inputs import files
from bad_inputs.commands import (
    fa_eval,
    fa_train,
    fa_verify,
    ff_eval,
    ff_predict,
    ff_train,
    in_encoder_run,
    in_run,
    in_train,
    sp_eval,
    sp_train,
    sp_verify,
)
from bad_inputs.harness import Case, Env

MODELS = {"sp": "run_speaker/model", "ff": "run_fakeface/model", "fa": "run_face/model", "in": "run_invert/model"}


def model(e: Env, task: str):
    return getattr(e.fx, f"model_{task}")


def damaged(e: Env, task: str, damage) -> str:
    """A copy of the task's fixture model folder, damaged by ``damage(folder)``."""
    folder = files.copy_model(model(e, task), e.path("model"))
    damage(folder)
    return str(folder)


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def replace(name: str, data: bytes | str):
    return lambda folder: files.write(folder / name, data)


def edit_extra(**changes):
    return lambda folder: files.edit_json(folder / "extra.json", **changes)


def run_copy(e: Env, task: str) -> str:
    """A copy of the task's fixture run folder (big checkpoints hard-linked: the case only reads them).
    The fakeface run's split file names the images as ``../images/...``: they are copied next to it."""
    if task == "ff":
        e.copy(e.fx.images, "images")
    return str(e.copy(getattr(e.fx, f"run_{task}"), "run", link=True))


def planted(e: Env, task: str) -> str:
    """A copy of the task's run folder whose checkpoint would create ``TMP/PLANTED`` when unpickled."""
    run = Path(run_copy(e, task))
    ckpt = run / "train" / "checkpoints" / "last.pt"
    ckpt.unlink()
    files.malicious_checkpoint(ckpt, e.forbid(e.path("PLANTED")))
    return str(run)


def garbage_checkpoint(e: Env, task: str) -> str:
    """A copy of the task's run folder whose checkpoint is not a checkpoint."""
    run = e.copy(getattr(e.fx, f"run_{task}"), "run")
    files.write(run / "train" / "checkpoints" / "last.pt", b"garbage")
    return str(run)


TRAIN = {"sp": sp_train, "ff": ff_train, "fa": fa_train, "in": in_train}

WRONG_TASK = [
    ("speaker-verify", "ff", lambda e, m: sp_verify(e, model=m)),
    ("speaker-verify", "fa", lambda e, m: sp_verify(e, model=m)),
    ("speaker-verify", "in", lambda e, m: sp_verify(e, model=m)),
    ("speaker-eval", "ff", lambda e, m: sp_eval(e, model=m)),
    ("speaker-trials-nearest", "fa", lambda e, m: ["speaker", "trials", str(e.fx.corpus), "--out",
                                                   str(e.path("t.txt")), "--mode", "sampled", "--n", "10",
                                                   "--hard-negatives", "nearest", "--model", str(m)]),
    ("fakeface-predict", "sp", lambda e, m: ff_predict(e, model=m)),
    ("fakeface-predict", "fa", lambda e, m: ff_predict(e, model=m)),
    ("fakeface-predict", "in", lambda e, m: ff_predict(e, model=m)),
    ("fakeface-eval", "fa", lambda e, m: ff_eval(e, model=m)),
    ("fakeface-explain", "sp", lambda e, m: ["fakeface", "explain", str(e.fx.photo), "--model", str(m),
                                             "--methods", "gradient", "--out", str(e.out)]),
    ("fakeface-fuse", "sp", lambda e, m: ["fakeface", "fuse", "--model", str(m), "--split", str(e.fx.split_ff),
                                          "--out", str(e.out)]),
    ("face-verify", "sp", lambda e, m: fa_verify(e, model=m)),
    ("face-verify", "ff", lambda e, m: fa_verify(e, model=m)),
    ("face-verify", "in", lambda e, m: fa_verify(e, model=m)),
    ("face-eval", "ff", lambda e, m: fa_eval(e, model=m)),
    ("invert-run-encoder", "sp", lambda e, m: in_encoder_run(e, encoder=m)),
    ("invert-run-encoder", "ff", lambda e, m: in_encoder_run(e, encoder=m)),
    ("invert-run-encoder", "fa", lambda e, m: in_encoder_run(e, encoder=m)),
    ("invert-run-features", "sp", lambda e, m: in_run(e, opts=["--features", str(m)])),
]


def _wrong_task(command: str, task: str, build) -> Case:
    return Case(f"{command}-with-{task}-model", f"{command.replace('-', ' ', 1)} given the {MODELS[task]} folder",
                MODELS[task], lambda e: build(e, model(e, task)))


CASES = [_wrong_task(*spec) for spec in WRONG_TASK] + [
    # ---- damaged model folders
    Case("speaker-verify-model-no-weights", "a model folder without model.safetensors", "model.safetensors",
         lambda e: sp_verify(e, model=damaged(e, "sp", remove("model.safetensors")))),
    Case("fakeface-predict-model-truncated-weights", "model.safetensors cut in half", "model.safetensors",
         lambda e: ff_predict(e, model=damaged(e, "ff", lambda f: files.truncate(f / "model.safetensors")))),
    Case("speaker-verify-model-nan-weights", "weights with NaN values", "model.safetensors",
         lambda e: sp_verify(e, model=damaged(e, "sp", files.nan_weights))),
    Case("face-verify-model-nan-weights", "weights with NaN values", "model.safetensors",
         lambda e: fa_verify(e, model=damaged(e, "fa", files.nan_weights))),
    Case("speaker-verify-extra-wrong-types", "extra.json: calibration is a string", "extra.json",
         lambda e: sp_verify(e, model=damaged(e, "sp", edit_extra(calibration="abc")))),
    Case("speaker-verify-extra-wrong-kind", "extra.json: kind is a number", "extra.json",
         lambda e: sp_verify(e, model=damaged(e, "sp", edit_extra(kind=5)))),
    Case("fakeface-predict-extra-wrong-types", "extra.json: load_size is a word", "extra.json",
         lambda e: ff_predict(e, model=damaged(e, "ff", edit_extra(load_size="big")))),
    Case("face-verify-extra-wrong-types", "extra.json: input_size is a word", "extra.json",
         lambda e: fa_verify(e, model=damaged(e, "fa", edit_extra(input_size="small")))),
    Case("invert-run-extra-wrong-types", "extra.json: nz is a word", "extra.json",
         lambda e: in_encoder_run(e, encoder=damaged(e, "in", edit_extra(nz="eight")))),
    Case("face-eval-extra-a-list", "extra.json holds a list", "extra.json",
         lambda e: fa_eval(e, model=damaged(e, "fa", replace("extra.json", "[1, 2, 3]\n")))),
    Case("fakeface-eval-extra-not-json", "extra.json is not JSON", "extra.json",
         lambda e: ff_eval(e, model=damaged(e, "ff", replace("extra.json", "{load_size: 32")))),
    Case("speaker-eval-model-yaml-garbage", "model.yaml is not YAML", "model.yaml",
         lambda e: sp_eval(e, model=damaged(e, "sp", replace("model.yaml", "name: [speaker\n  kwargs: {:")))),
    Case("face-verify-model-yaml-unknown-name", "model.yaml names no registered model", "model.yaml",
         lambda e: fa_verify(e, model=damaged(e, "fa", replace("model.yaml", "name: no_such_net\nkwargs: {}\n")))),
    Case("fakeface-predict-model-yaml-wrong-kwargs", "model.yaml: kwargs of the wrong type", "model.yaml",
         lambda e: ff_predict(e, model=damaged(e, "ff", replace("model.yaml", "name: resnet18\n"
                                                                            "kwargs: {num_classes: many}\n")))),
    Case("speaker-verify-model-card-not-utf8", "README.md (the model card) with Latin-1 bytes", "README.md",
         lambda e: sp_verify(e, model=damaged(e, "sp", replace("README.md", b"# model\n" + files.NOT_UTF8)))),
    Case("face-eval-model-yaml-not-utf8", "model.yaml with Latin-1 bytes", "model.yaml",
         lambda e: fa_eval(e, model=damaged(e, "fa", lambda f: files.write(
             f / "model.yaml", (f / "model.yaml").read_bytes() + b"# " + files.NOT_UTF8 + b"\n")))),
    Case("invert-run-config-not-utf8", "the encoder's config.yaml with Latin-1 bytes", "config.yaml",
         lambda e: in_encoder_run(e, encoder=damaged(e, "in", lambda f: files.write(
             f / "config.yaml", (f / "config.yaml").read_bytes() + b"# " + files.NOT_UTF8 + b"\n")))),
    Case("fakeface-predict-model-a-file", "--model names a file", "weights.safetensors",
         lambda e: ff_predict(e, model=e.copy(e.fx.model_ff / "model.safetensors", "weights.safetensors"))),
    # ---- run folders that must not be resumed
    *[Case(f"{name}-train-malicious-checkpoint", "resume from a checkpoint whose unpickling creates a file",
           "last.pt", lambda e, t=task: TRAIN[t](e, out=planted(e, t)))
      for name, task in (("speaker", "sp"), ("fakeface", "ff"), ("face", "fa"), ("invert", "in"))],
    *[Case(f"{name}-train-resume-other-lr", "train again into a run folder with another train.lr (no --restart)",
           "train.lr", lambda e, t=task: TRAIN[t](e, "train.lr=0.5", out=run_copy(e, t)))
      for name, task in (("speaker", "sp"), ("fakeface", "ff"), ("face", "fa"), ("invert", "in"))],
    Case("face-train-garbage-checkpoint", "resume from a checkpoint that is not one", "last.pt",
         lambda e: fa_train(e, out=garbage_checkpoint(e, "fa"))),
    # ---- generators
    Case("invert-run-generator-unknown", "--generator names nothing", "no-such-generator",
         lambda e: in_run(e, gen=["--generator", "no-such-generator", "--device", "cpu"])),
    Case("invert-run-generator-no-module", "--generator names a module that does not exist", "no_such_module_xyz",
         lambda e: in_run(e, gen=["--generator", "no_such_module_xyz:make", "--device", "cpu"])),
    Case("invert-run-generator-not-a-module", "--generator's factory returns a string", "os:getcwd",
         lambda e: in_run(e, gen=["--generator", "os:getcwd", "--nz", "8", "--device", "cpu"])),
    Case("invert-run-generator-not-torchscript", "--generator names a file that is not TorchScript", "garbage.pt",
         lambda e: in_run(e, gen=["--generator", str(e.write("garbage.pt", b"garbage")), "--nz", "8",
                                  "--device", "cpu"])),
    Case("invert-run-generator-wrong-output", "--generator returns feature maps, not images", "bad_inputs_gen",
         lambda e: in_run(e, gen=["--generator", "bad_inputs_gen:features", "--nz", "8", "--device", "cpu"])),
    Case("invert-run-weights-garbage", "--weights is not a state dict file", "garbage.pt",
         lambda e: in_run(e, opts=["--weights", str(e.write("garbage.pt", b"garbage"))])),
    Case("invert-run-weights-malicious", "--weights is a pickle whose unpickling creates a file", "evil.pt",
         lambda e: in_run(e, opts=["--weights", str(files.malicious_checkpoint(e.path("evil.pt"),
                                                                               e.forbid(e.path("PLANTED"))))])),
    Case("invert-run-encoder-missing", "--method encoder without --encoder", "--encoder",
         lambda e: in_run(e, opts=["--method", "encoder"])),
    Case("fakeface-fuse-bad-box", "--face-box with x1 < x0", "--face-box",
         lambda e: ["fakeface", "fuse", "--model", str(e.fx.model_ff), "--split", str(e.fx.split_ff), "--out",
                    str(e.out), "--face-box", "0.8", "0.1", "0.2", "0.9"]),
    Case("fakeface-fuse-out-is-model", "--out is the model folder itself", "model",
         lambda e: ["fakeface", "fuse", "--model", str(e.copy(e.fx.model_ff, "model", link=True)), "--split",
                    str(e.fx.split_ff), "--out", str(e.path("model"))]),
]
