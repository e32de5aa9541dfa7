"""Batched extraction agrees with one-at-a-time embedding (within 1e-4), for speaker and face; bad
files give a one-line error naming them, or are skipped and listed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import facevox
from facevox.audio.io import save_wav
from facevox.errors import FacevoxError
from facevox.tasks.face.embed import FaceEmbedder
from facevox.tasks.speaker.scoring import WaveEmbedder, extractor
from facevox.verification import EmbeddingStore, embed_paths, extract_images

SR = 16000
ECAPA = {"channels": 16, "mfa_channels": 32, "embed_dim": 8}


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    """Files of varied lengths, several of them equal (so batches form), one longer than max_seconds."""
    root = tmp_path_factory.mktemp("waves")
    rng = np.random.default_rng(0)
    seconds = [0.7, 1.0, 1.0, 1.3, 1.0, 0.7, 2.9, 1.3, 1.0, 0.9, 1.0, 0.7]
    files = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        files.append(save_wav(root / f"u{i:02d}.wav", wave.astype(np.float32)))
    return files


def _speaker_model():
    torch.manual_seed(0)
    return facevox.create_model("speaker_embedder", backbone="ecapa_tdnn", backbone_kwargs=ECAPA)


@pytest.mark.parametrize(("window", "workers", "batch"), [(0.0, 0, 4), (0.0, 2, 16), (0.5, 0, 5)])
def test_batched_speaker_embeddings_equal_one_at_a_time(waves, window, workers, batch):
    from facevox.audio.io import load_audio

    embedder = WaveEmbedder(_speaker_model(), window_seconds=window, max_seconds=2.0)  # u06 is cut into windows
    single = np.stack([embedder(load_audio(f, SR)) for f in waves])
    calls = []
    real = embedder.embed_batch
    embedder.embed_batch = lambda x: calls.append(len(x)) or real(x)
    emb, ok, _ = embed_paths(waves, extractor(embedder, workers=workers, batch_size=batch, progress=False))
    assert ok.all()
    np.testing.assert_allclose(emb, single, atol=1e-4)
    assert max(calls) > 1  # equal lengths were batched, not run one by one
    scores_single = single @ single.T
    np.testing.assert_allclose(emb @ emb.T, scores_single, atol=1e-4)


def test_memory_stays_bounded_when_lengths_never_repeat(waves):
    embedder = WaveEmbedder(_speaker_model())
    from facevox.verification import extract_waves

    got = {}
    extract_waves(np.array([bytes(str(f), "utf-8") for f in waves]), embedder.embed_batch, got.__setitem__,
                  chunker=embedder.chunks, batch_size=64, buffer_items=2, progress=False)
    assert sorted(got) == list(range(len(waves)))


def test_a_bad_audio_file_is_a_one_line_error_or_skipped(waves, tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    files = [*waves[:3], bad, waves[3]]
    embedder = WaveEmbedder(_speaker_model())
    with pytest.raises(FacevoxError) as err:
        embed_paths(files, extractor(embedder, progress=False))
    assert str(bad) in err.value.where and "\n" not in str(err.value)
    emb, ok, skipped = embed_paths(files, extractor(embedder, skip_bad=True, workers=2, progress=False),
                                   EmbeddingStore.open(tmp_path / "store", "fp"))
    assert ok.tolist() == [True, True, True, False, True] and [p for p, _ in skipped] == [bad]


def _face_images(root, n=10, size=(24, 24)):
    rng = np.random.default_rng(1)
    files = []
    for i in range(n):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        p = root / f"p{i % 3}" / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        files.append(p)
    return files


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_face_embeddings_equal_one_at_a_time(tmp_path, workers):
    from facevox.image.io import load_image

    files = _face_images(tmp_path, size=(30, 26))  # resized to the model's 32x32 in the workers
    torch.manual_seed(0)
    model = facevox.create_model("mobilefacenet", embed_dim=16, input_size=(32, 32), width=8)
    embedder = FaceEmbedder(model, (32, 32), device="cpu")
    single = np.concatenate([embedder.embed([load_image(f)]) for f in files])
    emb, ok, _ = embed_paths(files, lambda raw, sink: extract_images(raw, embedder.embed, sink, size=(32, 32),
                                                                     workers=workers, batch_size=4,
                                                                     progress=False))
    assert ok.all()
    np.testing.assert_allclose(emb, single, atol=1e-4)


def test_padding_would_change_a_speaker_embedding(waves):
    """Why only equal lengths share a batch: 0.1 s of zero padding moves the embedding far beyond 1e-4."""
    from facevox.audio.io import load_audio

    embedder = WaveEmbedder(_speaker_model())
    wave = load_audio(waves[1], SR)
    padded = np.pad(wave, (0, SR // 10))
    assert np.abs(embedder.embed_batch(wave[None]) - embedder.embed_batch(padded[None])).max() > 1e-2
