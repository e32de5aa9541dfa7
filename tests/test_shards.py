"""Tar shards: same items as the files, disjoint readers, exact resume, one-line errors, train from a shard list."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facevox.audio.io import AUDIO_EXTENSIONS
from facevox.audio.synth import make_corpus
from facevox.datasets.index import FileIndex, read_labelled
from facevox.datasets.shards import ShardItems, read_shards, source_items, write_shards
from facevox.datasets.stream import BatchStream, iter_records, sample_rng
from facevox.errors import FacevoxError
from facevox.image.transforms import AugmentSettings
from facevox.tasks.face.data import FaceImages, FaceRecord, load_faces
from facevox.tasks.fakeface.data import ImageRecord, TrainImages, load_resized, read_source
from facevox.tasks.speaker.datasets import CropDataset, SpeakerRecord, Waves
from test_datasets_index import make_images


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards") / "corpus"
    return make_corpus(root, n_speakers=4, utterances=4, seconds=(0.6, 1.0), seed=7, progress=False)


@pytest.fixture(scope="module")
def speaker_shards(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sh") / "shards"
    write_shards(source_items(corpus, "speaker"), out, per_shard=3)
    return out


def test_layout_and_shards_json(speaker_shards, corpus):
    info = json.loads((speaker_shards / "shards.json").read_text())
    listed = (speaker_shards / "shard.list").read_text().split()
    assert listed == [s["path"] for s in info["shards"]] and len(listed) == 6  # 16 items, 3 per shard
    assert [s["count"] for s in info["shards"]] == [3, 3, 3, 3, 3, 1] and info["task"] == "speaker"
    assert info["classes"] == ["spk000", "spk001", "spk002", "spk003"] and info["class_counts"] == [4, 4, 4, 4]
    with tarfile.open(speaker_shards / listed[0]) as tar:
        assert tar.getnames() == ["000000000.wav", "000000000.json", "000000001.wav", "000000001.json",
                                  "000000002.wav", "000000002.json"]
        meta = json.loads(tar.extractfile("000000000.json").read())
        assert tar.extractfile("000000000.wav").read() == (corpus / meta["path"]).read_bytes()  # the file's bytes
    assert meta["label"] == "spk000" and meta["label_index"] == 0 and 0.6 <= meta["duration"] <= 1.0


def test_shard_items_are_the_file_items(speaker_shards, corpus):
    index = read_labelled(corpus, AUDIO_EXTENSIONS, "audio", "speaker", "speaker")
    waves = Waves.from_index(index, 0.5, False, 0.8)
    ds = CropDataset(waves, 6000, len(waves), None)
    record = SpeakerRecord(6000, None, 0.8)
    by_path = {index.path(i).relative_to(corpus).as_posix(): i for i in range(len(index))}
    for n, (data, meta) in enumerate(iter_records(read_shards(speaker_shards))):
        x, y = record(data, meta, np.random.default_rng(n))
        x0, y0 = ds.get(by_path[meta["path"]], np.random.default_rng(n))
        assert torch.equal(x, x0) and y == y0


def test_image_records_are_the_file_items(tmp_path):
    make_images(tmp_path / "d")
    write_shards(source_items(tmp_path / "d", "fakeface"), tmp_path / "s", per_shard=3)
    items = read_source(tmp_path / "d")
    arrays, _ = load_resized(items, 48, False, None)
    settings = AugmentSettings(jpeg_prob=0.5, flip=True)
    ds = TrainImages(arrays, [it.label for it in items], 40, settings)
    faces, _ = load_faces([it.path for it in items], (24, 20), False)
    fds = FaceImages(faces, [it.label for it in items], True)
    rec, frec = ImageRecord(48, None, 40, settings), FaceRecord((24, 20), True)
    for n, (data, meta) in enumerate(iter_records(read_shards(tmp_path / "s"))):
        i = [it.path.relative_to(tmp_path / "d").as_posix() for it in items].index(meta["path"])
        for a, b in ((rec(data, meta, np.random.default_rng(n)), ds.get(i, np.random.default_rng(n))),
                     (frec(data, meta, np.random.default_rng(n)), fds.get(i, np.random.default_rng(n)))):
            assert torch.equal(a[0], b[0]) and float(a[1]) == float(b[1])


def fake_shards(tmp_path: Path, n_items: int = 41, per_shard: int = 4) -> Path:
    """Shards of tiny byte files (unchecked): a record returns (text, a number from the item's rng)."""
    paths = []
    for i in range(n_items):
        p = tmp_path / "src" / f"c{i % 3}" / f"{i}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"item{i}".encode())
        paths.append(p)
    items = ShardItems(FileIndex.build(paths, [p.parent.name for p in paths]), tmp_path / "src", "speaker")
    write_shards(items, tmp_path / "fs", per_shard=per_shard, check=False)
    return tmp_path / "fs"


def text_record(data: bytes, meta: dict, rng: np.random.Generator) -> tuple[str, float]:
    if data == b"BROKEN":
        raise FacevoxError("cannot decode audio (broken)", meta["_where"])
    return data.decode(), float(rng.random())


def epoch(stream: BatchStream, nw: int, start: int = 0, rank: int = 0, world: int = 1, ep: int = 0) -> list:
    it = stream.iterable(seed=3, epoch=ep, start=start, batch_size=3, rank=rank, world=world, num_workers=nw,
                         drop_last=True)
    return list(DataLoader(it, batch_size=None, num_workers=nw))


def test_readers_get_disjoint_shards_covering_all(tmp_path):
    stream = BatchStream(read_shards(fake_shards(tmp_path)), text_record, collate=list)
    n = len(stream.selected)
    for world in (1, 2, 3):
        for nw in (0, 1, 2, 3):
            got = [stream.reader_shards(3, 1, r, world, w, nw) for r in range(world) for w in range(max(1, nw))]
            flat = np.concatenate(got)
            assert sorted(flat.tolist()) == list(range(n)) and len(set(flat.tolist())) == n, (world, nw)


def test_ranks_yield_the_same_number_of_batches_and_disjoint_items(tmp_path):
    stream = BatchStream(read_shards(fake_shards(tmp_path)), text_record, collate=list)
    for world, nw in ((2, 0), (2, 2), (3, 1)):
        per_rank = [epoch(stream, nw, rank=r, world=world) for r in range(world)]
        want = stream.batches_per_epoch(3, world, nw, True)
        assert [len(b) for b in per_rank] == [want] * world
        seen = [x for batches in per_rank for b in batches for x, _ in b]
        assert len(seen) == len(set(seen))


def test_resume_gives_the_rest_of_the_epoch_exactly(tmp_path):
    stream = BatchStream(read_shards(fake_shards(tmp_path)), text_record, buffer=5, collate=list)
    for nw in (0, 2):
        full = epoch(stream, nw, ep=2)
        assert len(full) == stream.batches_per_epoch(3, 1, nw, True) >= 8
        for k in (1, 2, 5):
            assert epoch(stream, nw, start=k, ep=2) == full[k:], (nw, k)
    # a sample's randomness depends on (seed, epoch, shard, member), not on the number of workers
    one = dict(x for b in epoch(stream, 0, ep=2) for x in b)
    two = dict(x for b in epoch(stream, 2, ep=2) for x in b)
    assert all(one[k] == two[k] for k in set(one) & set(two)) and len(set(one) & set(two)) > 10
    assert epoch(stream, 0, ep=3) != epoch(stream, 0, ep=2)  # another epoch, another order


def corrupt_member(shards: Path, shard: int = 1, member: int = 1) -> str:
    """Rewrite one data member of a shard as b'BROKEN'; returns its name."""
    path = shards / (shards / "shard.list").read_text().split()[shard]
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for k, (m, data) in enumerate(members):
            data = b"BROKEN" if k == 2 * member else data
            m.size = len(data)
            tar.addfile(m, __import__("io").BytesIO(data))
    return f"{path}:{members[2 * member][0].name}"


def test_broken_member_is_one_error_naming_it_or_skipped(tmp_path, capfd):
    shards = fake_shards(tmp_path, n_items=12, per_shard=3)
    where = corrupt_member(shards)
    stream = BatchStream(read_shards(shards), text_record, collate=list, buffer=2)
    with pytest.raises(FacevoxError) as err:
        epoch(stream, 0)
    assert str(err.value) == f"{where}: cannot decode audio (broken)"
    skipping = BatchStream(read_shards(shards), text_record, collate=list, buffer=2, skip_bad=True)
    batches = epoch(skipping, 0)
    assert len(batches) == skipping.batches_per_epoch(3, 1, 0, True) and all(len(b) == 3 for b in batches)
    assert f"skipped bad item {where}: cannot decode audio (broken)" in capfd.readouterr().err


def test_webdataset_reads_the_shards(speaker_shards):
    wds = pytest.importorskip("webdataset")
    first = speaker_shards / (speaker_shards / "shard.list").read_text().split()[0]
    samples = list(wds.WebDataset(str(first), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["000000000", "000000001", "000000002"]
    assert json.loads(samples[0]["json"])["label"] == "spk000" and samples[0]["wav"][:4] == b"RIFF"


# ------------------------------------------------------------------------------------------ command line


def test_cli_shard_end_to_end_and_bad_files(corpus, tmp_path, capsys):
    from conftest import one_line_error
    from facevox.cli import main

    assert main(["data", "shard", str(corpus), "--out", str(tmp_path / "s"), "--per-shard", "5"]) == 0
    assert "16 speaker items of 4 classes in 4 shard(s)" in capsys.readouterr().out
    assert read_shards(tmp_path / "s" / "shard.list").items() == 16
    bad = tmp_path / "bad"
    for f in sorted(corpus.glob("spk*/*.wav")):
        (bad / f.parent.name).mkdir(parents=True, exist_ok=True)
        (bad / f.parent.name / f.name).write_bytes(f.read_bytes())
    (bad / "spk001" / "utt99.wav").write_bytes(b"RIFF junk")
    one_line_error(capsys, ["data", "shard", bad, "--out", tmp_path / "s2"], "utt99.wav", "cannot decode audio",
                   out=tmp_path / "s2")
    assert main(["data", "shard", str(bad), "--out", str(tmp_path / "s2"), "--skip-bad", "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert "skipped 1 bad file(s)" in out and "utt99.wav: cannot decode audio" in err
    assert json.loads((tmp_path / "s2" / "shards.json").read_text())["items"] == 16
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    one_line_error(capsys, ["data", "shard", corpus, "--out", tmp_path / "other"], "holds other files")


SPEAKER_TINY = ["train.max_steps=2", "train.epochs=1", "train.batch_size=4", "train.precision=fp32",
                "train.progress=false", "data.crop_seconds=0.5", "model.backbone=xvector",
                "model.backbone_kwargs={channels: 32, embed_dim: 16}", "train.num_workers=0"]


def sets(overrides: list[str]) -> list[str]:
    return [a for kv in overrides for a in ("--set", kv)]


def test_speaker_train_from_shards_and_a_broken_member(speaker_shards, tmp_path, capsys):
    from conftest import one_line_error
    from facevox.cli import main

    assert main(["speaker", "train", "--data", str(speaker_shards), "--out", str(tmp_path / "run"),
                 *sets(SPEAKER_TINY)]) == 0
    extra = json.loads((tmp_path / "run" / "model" / "extra.json").read_text())
    assert extra["train_utterances"] == 16 and extra["train_speakers"] == 4
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in speaker_shards.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    where = corrupt_member(broken, shard=0, member=1)
    capsys.readouterr()
    line = one_line_error(capsys, ["speaker", "train", "--data", broken, "--out", tmp_path / "run2",
                                   *sets(SPEAKER_TINY + ["train.max_steps=4", "data.max_utterance_seconds=30"])],
                          Path(where.split(":")[0]).name, "cannot decode audio")
    assert where.split(":")[1] in line
    one_line_error(capsys, ["speaker", "train", "--data", speaker_shards, "--out", tmp_path / "run3",
                            *sets(SPEAKER_TINY + ["data.per_speaker=2"])], "data.per_speaker", "shards")


def test_fakeface_and_face_train_from_shards(tmp_path, capsys):
    from facevox.cli import main
    from facevox.tasks.fakeface.data import make_split, write_split

    make_images(tmp_path / "d", n=8)
    items = read_source(tmp_path / "d")
    write_split(tmp_path / "split.csv", items, make_split(items, (0.5, 0.25, 0.25), seed=0))
    assert main(["data", "shard", str(tmp_path / "split.csv"), "--out", str(tmp_path / "s"), "--per-shard",
                 "2"]) == 0
    info = json.loads((tmp_path / "s" / "shards.json").read_text())
    assert {s["split"] for s in info["shards"]} == {"train", "val", "test"} and info["task"] == "fakeface"
    tiny = ["data.load_size=40", "data.crop_size=32", "model.name=resnet18", "train.max_steps=2",
            "train.batch_size=2", "train.precision=fp32", "train.progress=false"]
    assert main(["fakeface", "train", "--data", str(tmp_path / "s"), "--out", str(tmp_path / "run"),
                 *sets(tiny)]) == 0
    extra = json.loads((tmp_path / "run" / "model" / "extra.json").read_text())
    assert extra["train_images"] == 8 and "val_average_precision" in extra

    assert main(["data", "shard", str(tmp_path / "d"), "--task", "face", "--out", str(tmp_path / "fs"),
                 "--per-shard", "4"]) == 0
    face = ["data.input_size=[32, 32]", "model.backbone=mobilefacenet", "model.backbone_kwargs={width: 8}",
            "model.embed_dim=16", "train.max_steps=2", "train.batch_size=4", "train.precision=fp32",
            "train.progress=false"]
    assert main(["face", "train", "--data", str(tmp_path / "fs" / "shard.list"), "--out", str(tmp_path / "frun"),
                 *sets(face)]) == 0
    extra = json.loads((tmp_path / "frun" / "model" / "extra.json").read_text())
    assert extra["train_images"] == 16 and extra["train_identities"] == 2
    capsys.readouterr()


def test_sample_seeds_are_fixed():
    a = sample_rng(1, 2, 3, 4).random()
    assert a == sample_rng(1, 2, 3, 4).random() and a != sample_rng(1, 2, 3, 5).random()
