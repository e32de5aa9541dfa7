"""The typed inference spec of each task: written by training, read back by every consumer."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import facevox
from facevox.checkpoint import ModelCard, read_model_folder, save_model
from facevox.inference_spec import (
    SPECS,
    AudioGANSpec,
    FaceSpec,
    FakeFaceSpec,
    InvertSpec,
    SpeakerSpec,
    VocoderSpec,
    VoiceDetectorSpec,
    inference_spec,
)
from facevox.verification.calibration import Calibration

CAL = Calibration(a=8.0, b=-4.0, threshold=0.55, target_far=0.01, n_target=12, n_nontarget=300)


@pytest.mark.parametrize("spec", [
    SpeakerSpec(), SpeakerSpec(kind="pair", crop_samples=8000), SpeakerSpec(window_seconds=3.0, calibration=CAL),
    FaceSpec(), FaceSpec(input_size=(112, 96), flip=False, loss="sphereface2", threshold=0.3, calibration=CAL),
    FakeFaceSpec(load_size=64, threshold=0.4, mask=(0.1, 0.1, 0.9, 0.9)),
    InvertSpec(nz=100, input_size=(64, 64), generator={"source": "dcgan-face", "weights": None}),
    VocoderSpec(mel={"sample_rate": 16000, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 80,
                     "f_min": 0.0, "f_max": 8000.0}),
    VoiceDetectorSpec(n_fft=256, win_length=200, hop_length=80, window_seconds=2.0, threshold=0.3),
    AudioGANSpec(nz=16, samples=16384, output_range=(-1.0, 1.0)),
])
def test_spec_round_trips_through_extra_json(spec):
    extra = json.loads(json.dumps(spec.to_extra()))  # what extra.json holds
    assert extra["task"] == spec.task
    assert type(spec).from_extra(extra) == spec
    assert inference_spec(spec.task, extra) == spec


def test_every_task_has_a_spec():
    assert set(SPECS) == set(facevox.checkpoint.TASKS)
    assert inference_spec(None, {}) is None


def test_older_folders_read_with_the_defaults_stated_once():
    old_speaker = {"kind": "pair", "scoring": {"window_seconds": 0.0, "max_seconds": 20.0, "target_far": 0.01}}
    spec = inference_spec("speaker", old_speaker, {"pair": {"crop_samples": 12345}})
    assert spec.kind == "pair" and spec.crop_samples == 12345 and spec.sample_rate == 16000 and spec.threshold is None
    face = inference_spec("face", {"input_size": [16, 16], "calibration": CAL.to_dict()})
    assert face.flip is True and face.threshold == CAL.threshold and face.similarity == "cosine"


def test_saved_folder_gives_its_typed_spec(tmp_path):
    model = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    spec = FaceSpec(input_size=(16, 16), flip=False, loss="arcface", threshold=0.3, calibration=CAL)
    folder = save_model(tmp_path / "m", model, extra={**spec.to_extra(), "train_images": 10},
                        card=ModelCard(task="face verification embeddings", data="noise", licence="MIT"))
    assert yaml.safe_load((folder / "model.yaml").read_text())["task"] == "face"
    assert read_model_folder(folder).inference == spec
    torch.manual_seed(0)
    speaker = facevox.create_model("speaker_embedder", backbone="xvector",
                                   backbone_kwargs={"channels": 8, "embed_dim": 4})
    folder = save_model(tmp_path / "s", speaker, extra=SpeakerSpec(calibration=CAL).to_extra(),
                        card=ModelCard(task="speaker verification (embedding model)", data="noise", licence="MIT"))
    assert yaml.safe_load((folder / "model.yaml").read_text())["task"] == "speaker"
    assert read_model_folder(folder).inference.threshold == CAL.threshold


def test_wrong_types_in_a_spec_are_one_line_errors(tmp_path):
    model = facevox.create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4)
    folder = save_model(tmp_path / "m", model, extra={**FaceSpec(input_size=(16, 16)).to_extra(), "similarity": "l1"},
                        card=ModelCard(task="face verification embeddings", data="noise", licence="MIT"))
    with pytest.raises(facevox.errors.FacevoxError, match=r"extra.json: key 'similarity' must be 'cosine' or"):
        read_model_folder(folder)
