"""``facevox speaker attack`` and ``facevox fakeface attack``: budgets, attack names, a model of the
wrong task, and settings that do not fit the mode."""

from __future__ import annotations

from bad_inputs.harness import Case, Env


def sp_attack(e: Env, *opts: str, model=None) -> list[str]:
    return ["speaker", "attack", str(e.fx.corpus), "--model", str(model or e.fx.model_sp), "--out", str(e.out),
            "--seconds", "0.5", "--no-perceptual", *opts]


def ff_attack(e: Env, *opts: str, model=None) -> list[str]:
    return ["fakeface", "attack", str(e.fx.images), "--model", str(model or e.fx.model_ff), "--out", str(e.out), *opts]


CASES = [
    Case("speaker-attack-snr-zero", "an SNR budget of 0 dB", "--snr-db", lambda e: sp_attack(e, "--snr-db", "0")),
    Case("speaker-attack-unknown", "an attack facevox does not have", "--attack",
         lambda e: sp_attack(e, "--attack", "carlini")),
    Case("speaker-attack-fakeface-model", "a fakeface model folder given to speaker attack", "fakeface model folder",
         lambda e: sp_attack(e, model=e.fx.model_ff)),
    Case("speaker-attack-foolhd-verification", "FoolHD in verification mode", "FoolHD attacks speaker identification",
         lambda e: sp_attack(e, "--mode", "verification", "--attack", "foolhd")),
    Case("speaker-attack-foolhd-not-a-model", "--foolhd naming a file that is not a FoolHD autoencoder",
         "junk.safetensors", lambda e: sp_attack(e, "--attack", "foolhd", "--foolhd",
                                                 str(e.write("junk.safetensors", b"no safetensors here")))),
    Case("fakeface-attack-eps-fraction", "an L-inf budget of 4/0", "--eps", lambda e: ff_attack(e, "--eps", "4/0")),
    Case("fakeface-attack-eps-too-big", "an L-inf budget of 2 (pixel units are [0, 1])", "--eps",
         lambda e: ff_attack(e, "--eps", "2")),
    Case("fakeface-attack-speaker-model", "a speaker model folder given to fakeface attack", "speaker model folder",
         lambda e: ff_attack(e, model=e.fx.model_sp)),
]
