"""Every image a training command will read is decoded before training starts: the fakeface test split
(scored after training) and the face identities held out to set the threshold. A bad file stops the run
before anything is trained or written, or, with ``data.skip_bad``, is listed before training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facevox.config import load_config
from facevox.errors import FacevoxError
from facevox.train import Trainer


def _image(path, seed: int, size: int = 32) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:120])


# ------------------------------------------------------------------------------------------ fakeface


def _fakeface_data(root):
    """4 + 4 training, 1 + 1 validation, 2 + 2 test images, and a split file naming them."""
    rows = ["path,label,split"]
    for label in ("real", "fake"):
        for i, split in enumerate(["train"] * 4 + ["val"] + ["test"] * 2):
            _image(root / label / f"{i}.png", seed=i + (100 if label == "fake" else 0), size=64)
            rows.append(f"{label}/{i}.png,{label},{split}")
    (root / "split.csv").write_text("\n".join(rows) + "\n")
    _truncate(root / "fake" / "5.png")  # a test image
    return root / "split.csv"


def test_fakeface_bad_test_image_stops_the_run_before_training(tmp_path, monkeypatch):
    from facevox.tasks.fakeface import spectral
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.fakeface.train import train_fakeface

    split = _fakeface_data(tmp_path / "data")
    trained = []
    monkeypatch.setattr(spectral, "fit_spectral", lambda *a, **k: trained.append(1))
    cfg = load_config(FakefaceConfig, None, [f"data.split={split}", "model.name=spectral_logreg", "data.load_size=64"])
    with pytest.raises(FacevoxError, match="truncated") as err:
        train_fakeface(cfg, tmp_path / "run")
    assert "5.png" in str(err.value) and "\n" not in str(err.value)
    assert trained == [] and not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "eval").exists()


def test_fakeface_skip_bad_lists_bad_test_images_before_training(tmp_path, monkeypatch, capsys):
    from facevox.tasks.fakeface import spectral
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.fakeface.train import train_fakeface

    split = _fakeface_data(tmp_path / "data")
    fit, seen = spectral.fit_spectral, []

    def spy(*args, **kwargs):
        seen.append(capsys.readouterr().err)
        return fit(*args, **kwargs)

    monkeypatch.setattr(spectral, "fit_spectral", spy)
    cfg = load_config(FakefaceConfig, None, [f"data.split={split}", "model.name=spectral_logreg", "data.load_size=64",
                                             "data.skip_bad=true"])
    result = train_fakeface(cfg, tmp_path / "run")
    assert len(seen) == 1 and "skipped 1 bad test image(s)" in seen[0] and "5.png" in seen[0]
    assert result["test"]["n_real"] == 2 and result["test"]["n_fake"] == 1


def test_fakeface_test_split_without_both_classes_left_is_refused_before_training(tmp_path, monkeypatch):
    from facevox.tasks.fakeface import spectral
    from facevox.tasks.fakeface.config import FakefaceConfig
    from facevox.tasks.fakeface.train import train_fakeface

    split = _fakeface_data(tmp_path / "data")
    _truncate(tmp_path / "data" / "fake" / "6.png")  # the other fake test image
    monkeypatch.setattr(spectral, "fit_spectral", lambda *a, **k: pytest.fail("trained"))
    cfg = load_config(FakefaceConfig, None, [f"data.split={split}", "model.name=spectral_logreg", "data.load_size=64",
                                             "data.skip_bad=true"])
    with pytest.raises(FacevoxError, match="test split needs real and fake images that decode; has 2 real and 0"):
        train_fakeface(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "model").exists()


# ------------------------------------------------------------------------------------------ face


FACE_TINY = ["model.backbone=mobilefacenet", "model.backbone_kwargs={width: 8}", "model.embed_dim=16",
             "data.input_size=[32, 32]", "train.batch_size=4", "train.max_steps=1", "train.precision=fp32",
             "train.progress=false", "data.calib_identities=2", "scoring.target_far=0.5"]


def _face_data(root):
    from facevox.tasks.face.pairs import read_identities
    from facevox.tasks.face.train import _held_out

    for p in range(6):
        for i in range(3):
            _image(root / f"p{p}" / f"{i}.png", seed=10 * p + i)
    held = sorted(_held_out(read_identities(root), 2, seed=0))  # the identities train_face holds out (seed 0)
    bad = root / held[0] / "1.png"
    _truncate(bad)
    return bad


def test_face_bad_held_out_image_stops_the_run_before_training(tmp_path, monkeypatch):
    from facevox.tasks.face.config import FaceConfig
    from facevox.tasks.face.train import train_face

    bad = _face_data(tmp_path / "faces")
    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    cfg = load_config(FaceConfig, None, [f"data.train={tmp_path / 'faces'}", *FACE_TINY])
    with pytest.raises(FacevoxError, match="truncated") as err:
        train_face(cfg, tmp_path / "run")
    assert err.value.where == str(bad)
    assert not (tmp_path / "run" / "train").exists() and not (tmp_path / "run" / "model").exists()


def test_face_skip_bad_lists_bad_held_out_images_before_training(tmp_path, monkeypatch, capsys):
    import json

    from facevox.tasks.face.config import FaceConfig
    from facevox.tasks.face.train import train_face

    bad = _face_data(tmp_path / "faces")
    fit, seen = Trainer.fit, []

    def spy(self, *args, **kwargs):
        seen.append(capsys.readouterr().err)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    cfg = load_config(FaceConfig, None, [f"data.train={tmp_path / 'faces'}", *FACE_TINY, "data.skip_bad=true"])
    train_face(cfg, tmp_path / "run")
    assert len(seen) == 1 and "skipped 1 bad image(s)" in seen[0] and str(bad) in seen[0]
    extra = json.loads((tmp_path / "run" / "model" / "extra.json").read_text())
    assert len(extra["calib_identities"]) == 2 and extra["train_identities"] == 4
