"""The lazy file index: compact arrays, and exactly the items of the in-RAM datasets for the same (index, seed)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from facevox.audio.io import AUDIO_EXTENSIONS
from facevox.audio.synth import make_corpus
from facevox.data import SeededDataset
from facevox.datasets.index import IN_MEMORY_LIMIT, FileIndex, PathArray, read_labelled, use_memory
from facevox.errors import FacevoxError
from facevox.image.transforms import AugmentSettings
from facevox.tasks.face.data import FaceImages, LazyFaceImages, load_faces
from facevox.tasks.fakeface.data import LazyTrainImages, TrainImages, image_index, load_resized, read_source
from facevox.tasks.speaker.corpus import read_corpus
from facevox.tasks.speaker.datasets import (
    CropDataset,
    LazyWaves,
    PairDataset,
    Waves,
    make_augment,
    split_calibration,
    split_calibration_index,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("idx") / "corpus"
    return make_corpus(root, n_speakers=4, utterances=3, seconds=(0.8, 1.2), seed=5, progress=False)


def speaker_index(root):
    return read_labelled(root, AUDIO_EXTENSIONS, "audio", "speaker", "speaker")


def same_items(a: SeededDataset, b: SeededDataset, n: int) -> None:
    for i in range(n):
        xa, ya = a[(i, 1000 + i)]
        xb, yb = b[(i, 1000 + i)]
        assert torch.equal(xa, xb) and torch.equal(torch.as_tensor(ya), torch.as_tensor(yb)), i


def test_index_is_a_few_numpy_arrays(tmp_path):
    paths = [tmp_path / f"s{i % 3}" / f"é{i}.wav" for i in range(50)]
    index = FileIndex.build(paths, [p.parent.name for p in paths], durations=[1.5] * 50, groups={"g": ["a", "b"] * 25})
    assert index.classes == ("s0", "s1", "s2") and index.labels.dtype == np.int64
    assert [index.path(i) for i in range(50)] == paths and index.label_name(4) == "s1"
    assert isinstance(index.paths, PathArray) and index.paths.buffer.dtype == np.uint8
    assert index.group("g", 3) == "b" and index.seconds() == pytest.approx(75.0)
    sub = index.take([4, 1])
    assert [sub.path(0), sub.path(1)] == [paths[4], paths[1]] and sub.labels.tolist() == [1, 1]
    assert sub.relabel(["s1"]).labels.tolist() == [0, 0]
    text = sum(len(os.fsencode(p)) for p in paths)  # no Python object per item: path bytes + fixed-size numbers
    assert index.nbytes == text + 8 * 51 + 8 * 50 + 4 * 50 + 4 * 50


def test_in_memory_setting():
    assert use_memory("auto", IN_MEMORY_LIMIT) and not use_memory("auto", IN_MEMORY_LIMIT + 1)
    assert use_memory(True, 10**7) and not use_memory(False, 1)


def test_folder_index_is_the_corpus(corpus):
    index, c = speaker_index(corpus), read_corpus(corpus)
    labels, names = c.labels()
    assert [index.path(i) for i in range(len(index))] == [u.path for u in c.utterances]
    assert index.labels.tolist() == labels.tolist() and list(index.classes) == names


def test_manifest_with_durations_and_groups(corpus, tmp_path):
    c = read_corpus(corpus)
    rows = ["path,speaker,duration,sex"] + [f"{u.path},{u.speaker},1.0,f" for u in c.utterances]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    index = speaker_index(tmp_path / "m.csv")
    assert index.durations.tolist() == [1.0] * len(c.utterances) and index.group("sex", 0) == "f"
    (tmp_path / "bad.csv").write_text("path,speaker\nx.txt,a\n")
    with pytest.raises(FacevoxError, match="line 2: not an audio file extension: x.txt"):
        speaker_index(tmp_path / "bad.csv")


@pytest.mark.parametrize("augment", [False, True])
def test_lazy_waves_give_the_in_ram_crops(corpus, augment):
    index = speaker_index(corpus)
    ram, lazy = Waves.from_index(index, 0.5, False, 1.0), LazyWaves(index, 0.5, False, 1.0)  # 1 s: files are cut
    assert len(ram) == len(lazy) and ram.speakers == lazy.speakers and ram.labels.tolist() == lazy.labels.tolist()
    assert lazy.seconds() == pytest.approx(ram.seconds(), abs=1e-3)
    assert np.array_equal(ram.wave(3), lazy.wave(3))
    aug_r = make_augment(0.5, (5, 20), 0.5, ram) if augment else None
    aug_l = make_augment(0.5, (5, 20), 0.5, lazy) if augment else None
    same_items(CropDataset(ram, 8000, len(ram), aug_r), CropDataset(lazy, 8000, len(lazy), aug_l), len(ram))
    same_items(CropDataset(ram, 4000, 8, None, per_speaker=2), CropDataset(lazy, 4000, 8, None, per_speaker=2), 8)
    same_items(PairDataset(ram, 4000, 6, 0.5, None), PairDataset(lazy, 4000, 6, 0.5, None), 6)


def test_lazy_waves_check_headers_before_training(corpus, tmp_path):
    root = tmp_path / "c"
    for f in sorted(corpus.glob("spk*/*.wav")):
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        (root / f.parent.name / f.name).write_bytes(f.read_bytes())
    sf.write(root / "spk000" / "short.wav", np.full(1600, 0.1, dtype=np.float32), 16000)
    (root / "spk001" / "broken.wav").write_bytes(b"RIFF....not audio")
    index = speaker_index(root)
    with pytest.raises(FacevoxError, match=r"short.wav: audio too short \(0.10 s, need at least 0.5 s\)"):
        LazyWaves(index, 0.5, False, 30.0)  # the message the in-RAM path gives
    with pytest.raises(FacevoxError, match=r"short.wav: audio too short \(0.10 s, need at least 0.5 s\)"):
        Waves.from_index(index, 0.5, False, 30.0)
    with pytest.raises(FacevoxError, match=r"broken.wav: cannot decode audio"):
        LazyWaves(index.take([i for i in range(len(index)) if index.path(i).name != "short.wav"]), 0.5, False, 30.0)
    lazy = LazyWaves(index, 0.5, True, 30.0)
    assert sorted(p.name for p, _ in lazy.skipped) == ["broken.wav", "short.wav"]
    assert "audio too short (0.10 s, need at least 0.5 s)" in dict((p.name, w) for p, w in lazy.skipped)["short.wav"]
    assert len(lazy) == len(index) - 2


def test_calibration_hold_out_is_the_same(corpus):
    index, c = speaker_index(corpus), read_corpus(corpus)
    train, held = split_calibration(c, 2, seed=3)
    train_i, held_i = split_calibration_index(index, 2, seed=3)
    assert [u.path for u in held] == [u.path for u in held_i]
    assert [u.path for u in train] == [train_i.path(i) for i in range(len(train_i))]


def make_images(root, n=4, size=40):
    rng = np.random.default_rng(0)
    for name in ("real", "fake"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 255, (size, size + 8 * i, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")


def test_lazy_fakeface_images_are_the_in_ram_tensors(tmp_path):
    make_images(tmp_path / "d")
    items = read_source(tmp_path / "d")
    mask = (0.1, 0.1, 0.3, 0.3)
    arrays, kept = load_resized(items, 48, False, mask)
    settings = AugmentSettings(jpeg_prob=0.5, blur_prob=0.5, flip=True)
    ram = TrainImages(arrays, [it.label for it in kept], 40, settings)
    lazy = LazyTrainImages(image_index(items, False), 48, mask, 40, settings)
    same_items(ram, lazy, len(items))


def test_lazy_face_images_are_the_in_ram_tensors(tmp_path):
    make_images(tmp_path / "d")
    paths = sorted((tmp_path / "d").rglob("*.png"))
    arrays, kept = load_faces(paths, (32, 28), False)
    labels = [int(p.parent.name == "real") for p in kept]
    index = FileIndex.build(paths, [p.parent.name for p in paths], classes=["fake", "real"])
    same_items(FaceImages(arrays, labels, True), LazyFaceImages(index, (32, 28), True), len(paths))


def test_lazy_images_skip_a_broken_one_for_its_class(tmp_path):
    make_images(tmp_path / "d")
    bad = tmp_path / "d" / "fake" / "1.png"
    bad.write_bytes(bad.read_bytes()[:120])  # the header reads, the body is cut: found in the worker
    index = image_index(read_source(tmp_path / "d"), False)
    with pytest.raises(FacevoxError, match=r"1.png: cannot decode"):
        LazyTrainImages(index, 48, None, 40, AugmentSettings())[(5, 1)]
    x, y = LazyTrainImages(index, 48, None, 40, AugmentSettings(), skip_bad=True)[(5, 1)]
    assert x.shape == (3, 40, 40) and float(y) == 1.0


def test_tasks_train_lazily_with_workers(corpus, tmp_path, capsys):
    """data.in_memory=false: each task trains a step or two decoding in 2 DataLoader workers."""
    import json

    from facevox.cli import main

    def sets(pairs):
        return [a for kv in pairs for a in ("--set", kv)]

    common = ["data.in_memory=false", "train.max_steps=2", "train.precision=fp32", "train.progress=false",
              "train.num_workers=2"]
    assert main(["speaker", "train", "--data", str(corpus), "--out", str(tmp_path / "sp"),
                 *sets(common + ["train.batch_size=4", "data.crop_seconds=0.5", "model.backbone=xvector",
                                 "model.backbone_kwargs={channels: 32, embed_dim: 16}", "data.calib_speakers=2"])]) == 0
    extra = json.loads((tmp_path / "sp" / "model" / "extra.json").read_text())
    assert extra["train_utterances"] == 6 and "calibration" in extra
    make_images(tmp_path / "img", n=6)
    assert main(["fakeface", "train", "--data", str(tmp_path / "img"), "--out", str(tmp_path / "ff"),
                 *sets(common + ["train.batch_size=2", "data.load_size=40", "data.crop_size=32",
                                 "model.name=resnet18"])]) == 0
    assert (tmp_path / "ff" / "eval").is_dir()
    assert main(["face", "train", "--data", str(tmp_path / "img"), "--out", str(tmp_path / "fa"),
                 *sets(common + ["train.batch_size=4", "data.input_size=[32, 32]", "model.backbone=mobilefacenet",
                                 "model.backbone_kwargs={width: 8}", "model.embed_dim=16"])]) == 0
    capsys.readouterr()
