"""The speaker task end to end on tiny generated audio: train, trials, eval, verify, bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from facevox.audio.synth import make_corpus
from facevox.checkpoint import read_model_folder
from facevox.config import load_config
from facevox.errors import FacevoxError
from facevox.tasks.speaker.config import SpeakerConfig
from facevox.tasks.speaker.corpus import Corpus, Utterance, make_trials, read_corpus, read_trials, write_trials
from facevox.tasks.speaker.datasets import CropDataset, Waves, split_calibration
from facevox.tasks.speaker.scoring import embed_files
from facevox.verification import EmbeddingStore
from facevox.verification.calibration import fit_calibration
from test_speaker_nets import TINY as TINY_SIZES

RECIPES = Path(__file__).resolve().parent.parent / "src" / "facevox" / "recipes" / "speaker"
TINY = [
    "train.max_steps=2", "train.epochs=1", "train.batch_size=4", "train.precision=fp32", "train.progress=false",
    "data.crop_seconds=0.5", "data.crops_per_epoch=8", "pair.crop_samples=8000", "pair.pairs_per_epoch=8",
]


def facevox(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", FACEVOX_CACHE=str(Path(cwd or ".") / "cache"))
    return subprocess.run([sys.executable, "-m", "facevox", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def sets(overrides: list[str]) -> list[str]:
    return [a for kv in overrides for a in ("--set", kv)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speaker") / "corpus"
    return make_corpus(root, n_speakers=6, utterances=3, seconds=(1.0, 1.4), seed=3, progress=False)


# ------------------------------------------------------------------------------------------------
# library pieces


def test_crop_dataset_class_balanced_items(corpus):
    waves = Waves(read_corpus(corpus).utterances, 0.5, False, 30.0)
    ds = CropDataset(waves, 4000, 12, None, per_speaker=3)
    x, y = ds.get(7, np.random.default_rng(0))
    assert x.shape == (3, 4000) and y.tolist() == [7 % 6] * 3
    assert not torch.equal(x[0], x[1])  # different utterances or positions
    x1, y1 = CropDataset(waves, 4000, 12, None).get(7, np.random.default_rng(0))
    assert x1.shape == (4000,) and y1 == waves.labels[7 % len(waves)]


def test_imprinting_sets_class_weights_to_speaker_mean_embeddings(corpus):
    from facevox.registry import create_loss, create_model
    from facevox.tasks.speaker.train import imprint_class_weights

    waves = Waves(read_corpus(corpus).utterances, 0.5, False, 30.0)
    torch.manual_seed(0)
    model = create_model("speaker_embedder", backbone="xvector", backbone_kwargs={"channels": 16, "embed_dim": 8})
    head = create_loss("aam_softmax", embed_dim=8, num_classes=len(waves.speakers))
    imprint_class_weights(head, model, waves)
    model.eval()
    with torch.no_grad():
        embs = torch.nn.functional.normalize(
            torch.cat([model(torch.from_numpy(waves.wave(i))[None]) for i in range(len(waves))]), dim=1)
    for s in range(len(waves.speakers)):
        expected = torch.nn.functional.normalize(embs[torch.from_numpy(waves.labels == s)].mean(0), dim=0)
        assert torch.allclose(head.weight[s], expected, atol=1e-5)
    assert model.training is False  # left as it was found


def test_calibration_holds_out_only_speakers_with_two_utterances(tmp_path):
    utts = [Utterance(Path(f"s{i}/a.wav"), f"s{i}") for i in range(5)] + [
        Utterance(Path("s9/a.wav"), "s9"), Utterance(Path("s9/b.wav"), "s9")]
    train, held = split_calibration(Corpus(tmp_path, utts), 1)
    assert {u.speaker for u in held} == {"s9"} and len(train) == 5
    with pytest.raises(FacevoxError, match="1 of them with 2 or more"):
        split_calibration(Corpus(tmp_path, utts), 2)


def test_fit_calibration_gaussian_known_answer():
    # targets N(1, 1), non-targets N(-1, 1): the true log-likelihood ratio is 2 s
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 20000), rng.normal(-1, 1, 20000)])
    labels = np.repeat([1, 0], 20000)
    cal = fit_calibration(scores, labels, target_far=0.05)
    assert cal.a == pytest.approx(2.0, abs=0.08) and cal.b == pytest.approx(0.0, abs=0.05)
    assert np.mean(scores[labels == 0] >= cal.threshold) == pytest.approx(0.05, abs=0.002)
    assert float(cal.probability(0.0)) == pytest.approx(0.5, abs=0.02)


def as_norm(raw, a, b, cohort, top_k):
    from facevox.verification import as_norm_pairs, cohort_stats

    emb = np.concatenate([a, b])
    mu, sd = cohort_stats(emb, cohort, top_k)
    ia, ib = np.arange(len(a)), np.arange(len(a), 2 * len(a))
    return as_norm_pairs(raw, ia, ib, mu, sd)


def test_as_norm_removes_a_per_speaker_offset():
    rng = np.random.default_rng(0)
    cohort = rng.normal(size=(50, 16))
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(4, 16))
    raw = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    normed = as_norm(raw, a, b, cohort, top_k=10)
    # the normalisation is affine and increasing in the raw score for fixed embeddings:
    shifted = as_norm(raw + 0.1, a, b, cohort, top_k=10)
    assert np.all(shifted > normed)
    assert np.allclose(as_norm(raw, a, b, cohort, top_k=1000), as_norm(raw, a, b, cohort, top_k=50))


def test_embedding_cache_reuses_and_invalidates(tmp_path, corpus):
    files = sorted(corpus.glob("spk00*/utt0*.wav"))[:3]
    calls = []

    def embed(wave: np.ndarray) -> np.ndarray:
        calls.append(len(wave))
        return np.array([len(wave), 1.0], dtype=np.float32)

    store = tmp_path / "store"
    first = embed_files(files, embed, EmbeddingStore.open(store, "fp"))
    again = embed_files(files, embed, EmbeddingStore.open(store, "fp"))
    assert len(calls) == 3 and all(np.array_equal(first[f], again[f]) for f in files)
    copy = tmp_path / "x.wav"
    copy.write_bytes(files[0].read_bytes())
    embed_files([copy], embed, EmbeddingStore.open(store, "fp"))
    assert len(calls) == 4


def test_trials_all_and_sampled(corpus):
    c = read_corpus(corpus)
    every = make_trials(c, mode="all")
    assert len(every) == 18 * 17 // 2 and sum(t.label for t in every) == 6 * 3
    sampled = make_trials(c, mode="sampled", n=100, target_fraction=0.38, seed=1)
    assert len(sampled) == 100 and sum(t.label for t in sampled) == 38
    meta = {s: ("m" if int(s[-1]) % 2 == 0 else "f") for s in c.speakers}
    hard = make_trials(c, mode="sampled", n=60, target_fraction=0.5, hard_negatives="sex", metadata=meta)
    for t in hard:
        if not t.label:
            assert meta[t.a.split("/")[0]] == meta[t.b.split("/")[0]]


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_every_speaker_recipe_trains_two_steps(recipe, corpus, tmp_path):
    from facevox.tasks.speaker.train import train_speaker

    cfg = load_config(SpeakerConfig, str(RECIPES / recipe), [*TINY, f"data.train={corpus}"])
    if cfg.model.pretrained == "resemblyzer":
        pytest.importorskip("resemblyzer")
    result = train_speaker(cfg, tmp_path / "run", resume=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if "loss" in x]
    assert losses and all(np.isfinite(losses))
    assert (result["model"] / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------
# the command line, as a user drives it


@pytest.mark.slow
def test_cli_train_trials_eval_verify(corpus, tmp_path):
    run = tmp_path / "run"
    done = facevox("speaker", "train", "--recipe", str(RECIPES / "xvector_aam.yaml"), "--data", str(corpus),
                   "--out", str(run), *sets([*TINY, "train.max_steps=6", "data.calib_speakers=2",
                                             "model.backbone_kwargs={channels: 32, embed_dim: 16}"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    model = run / "model"
    extra = json.loads((model / "extra.json").read_text())
    assert extra["train_speakers"] == 4 and extra["calibration"]["n_target"] == 6
    assert yaml.safe_load((model / "model.yaml").read_text())["task"] == "speaker"
    spec = read_model_folder(model).inference  # the typed spec every consumer reads
    assert spec.kind == "embedding" and spec.sample_rate == 16000
    assert spec.threshold == extra["calibration"]["threshold"]
    held = json.loads((model / "metrics.json").read_text())  # what it scored on its 2 held-out speakers
    assert held["held_out_classes"] == 2 and held["held_out_target_trials"] == 6 and 0 <= held["held_out_eer"] <= 1

    trials = tmp_path / "trials.txt"
    done = facevox("speaker", "trials", str(corpus), "--out", str(trials), "--mode", "sampled", "--n", "40",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = read_trials(trials)
    assert len(listed) == 40 and sum(t.label for t in listed) == round(0.38 * 40)

    done = facevox("speaker", "eval", str(trials), "--audio-root", str(corpus), "--model", str(model),
                   "--out", str(tmp_path / "eval"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "EER" in done.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["eer"] <= 1.0 and "cllr" in metrics and metrics["n_trials"] == 40
    for name in ("report.html", "det.png", "roc.png", "scores.txt"):
        assert (tmp_path / "eval" / name).is_file()
    assert len((tmp_path / "eval" / "scores.txt").read_text().splitlines()) == 40
    assert list((tmp_path / "cache").glob("speaker-*/meta.json"))  # embeddings were stored

    a, b = corpus / "spk000" / "utt00.wav", corpus / "spk001" / "utt00.wav"
    done = facevox("speaker", "verify", str(a), str(b), "--model", str(model), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= {"score", "same", "threshold", "p_same"} and 0 <= result["p_same"] <= 1
    assert result["same"] == (result["score"] >= result["threshold"])
    done = facevox("speaker", "verify", str(a), str(a), "--model", str(model), cwd=tmp_path)
    assert done.returncode == 0 and "decision same speaker" in done.stdout and "score 1.0000" in done.stdout


@pytest.mark.slow
def test_cli_pair_classifier_eval_and_verify(corpus, tmp_path):
    run = tmp_path / "pair"
    done = facevox("speaker", "train", "--recipe", str(RECIPES / "pair_alexnet.yaml"), "--data", str(corpus),
                   "--out", str(run), *sets([*TINY, "model.backbone_kwargs={width: 0.25}"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = write_trials(tmp_path / "t.txt", make_trials(read_corpus(corpus), mode="all")[:30])
    done = facevox("speaker", "eval", str(trials), "--audio-root", str(corpus), "--model", str(run / "model"),
                   "--out", str(tmp_path / "eval"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = facevox("speaker", "verify", str(corpus / "spk000" / "utt00.wav"), str(corpus / "spk001" / "utt01.wav"),
                   "--model", str(run / "model"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["threshold"] == 0.0 and result["same"] == (result["score"] >= 0.0)


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the words its error must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + rng.bytes(400))
    empty = folder / "empty.flac"
    empty.write_bytes(b"")
    silent = folder / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    short = folder / "short.wav"
    sf.write(short, 0.1 * rng.standard_normal(800).astype(np.float32), 16000)
    return {"corrupt": (corrupt, "decod"), "empty": (empty, "empty"), "silent": (silent, "silent"),
            "short": (short, "short")}


@pytest.fixture(scope="module")
def tiny_model(corpus, tmp_path_factory) -> Path:
    from facevox.tasks.speaker.train import train_speaker

    cfg = load_config(SpeakerConfig, str(RECIPES / "xvector_aam.yaml"),
                      [*TINY, f"data.train={corpus}", "model.backbone_kwargs={channels: 16, embed_dim: 8}"])
    return train_speaker(cfg, tmp_path_factory.mktemp("tiny"), resume=False)["model"]


def test_cli_verify_bad_inputs_one_line_errors(corpus, tiny_model, tmp_path):
    good = corpus / "spk000" / "utt00.wav"
    for name, (path, words) in _bad_files(tmp_path / "bad").items():
        done = facevox("speaker", "verify", str(good), str(path), "--model", str(tiny_model), cwd=tmp_path)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(path) in done.stderr and words in done.stderr.lower(), (name, done.stderr)
    done = facevox("speaker", "verify", str(good), str(good), "--model", str(tmp_path / "no-model"), cwd=tmp_path)
    assert done.returncode == 2 and "no-model" in done.stderr


def test_verify_reads_other_formats_and_rates(corpus, tiny_model, tmp_path):
    from facevox.tasks.speaker.evaluate import SpeakerScorer

    wave, rate = sf.read(corpus / "spk000" / "utt00.wav", dtype="float32")
    stereo48 = tmp_path / "stereo48.wav"
    up = np.interp(np.arange(0, len(wave), rate / 48000), np.arange(len(wave)), wave).astype(np.float32)
    sf.write(stereo48, np.stack([up, up], axis=1), 48000)
    pcm8 = tmp_path / "u8.wav"
    sf.write(pcm8, wave, rate, subtype="PCM_U8")
    mp3 = tmp_path / "clip.mp3"
    try:
        sf.write(mp3, wave, rate, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        mp3 = None
    scorer = SpeakerScorer(tiny_model)
    for other in (stereo48, pcm8, mp3):
        if other is None:
            continue
        result = scorer.verify(corpus / "spk000" / "utt00.wav", other)
        assert result["score"] > 0.9, (other, result)  # the same recording, re-encoded


@pytest.mark.slow
def test_training_on_a_corpus_with_bad_files(corpus, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    bad = _bad_files(tmp_path / "bad")
    shutil.copy(bad["corrupt"][0], data / "spk001" / "broken.wav")
    shutil.copy(bad["silent"][0], data / "spk002" / "silence.wav")
    args = ["speaker", "train", "--recipe", str(RECIPES / "xvector_aam.yaml"), "--data", str(data),
            *sets([*TINY, "model.backbone_kwargs={channels: 16, embed_dim: 8}"])]
    done = facevox(*args, "--out", str(tmp_path / "strict"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "broken.wav" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "strict").exists()  # nothing half-written

    done = facevox(*args, "--out", str(tmp_path / "skip"), "--set", "data.skip_bad=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped 2 bad file(s)" in done.stderr
    extra = json.loads((tmp_path / "skip" / "model" / "extra.json").read_text())
    assert len(extra["skipped_files"]) == 2 and extra["train_utterances"] == 18


def test_unknown_recipe_keys_and_kinds_are_one_line_errors(corpus, tmp_path):
    for extra in (["--set", "model.kind=triplet"], ["--set", "loss.name=aam_softmax", "--set", "model.kind=pair"],
                  ["--set", "data.calib_speakers=9"], ["--set", "data.calib_speakers=1"],
                  ["--set", "model.kind=siamese", "--set", "loss.name=pair_bce"], ["--set", "loss.name=contrastive"],
                  ["--set", "data.noise_prob=2"], ["--set", "loss.name=sphereface2", "--set", "loss.kwargs={lam: 3}"]):
        done = facevox("speaker", "train", "--data", str(corpus), "--out", str(tmp_path / "r"), *extra, cwd=tmp_path)
        assert done.returncode == 2, (extra, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "r" / "model").exists()


def _registered_losses() -> list[str]:
    from facevox.registry import LOSSES, create_loss

    names = []
    for name in LOSSES.names():
        try:
            loss = create_loss(name, embed_dim=4, num_classes=3)
        except FacevoxError:  # pair losses take no embed_dim / num_classes
            continue
        if not getattr(loss, "pair_loss", False):
            names.append(name)
    return names


@pytest.mark.parametrize("loss", _registered_losses())
def test_every_embedding_loss_trains_on_generated_audio(loss, corpus, tmp_path):
    from facevox.tasks.speaker.train import train_speaker

    cfg = load_config(SpeakerConfig, None, [*TINY, "train.max_steps=3", f"data.train={corpus}", f"loss.name={loss}",
                                            "data.per_speaker=2", "loss.margin_warmup_epochs=1",
                                            "model.backbone=xvector", "model.backbone_kwargs={channels: 16}"])
    train_speaker(cfg, tmp_path, resume=False)
    rows = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)


# the tiny sizes of the backbone tests: only "does it train on real waveforms without NaN" is asked here
BACKBONES = {name: size for name, size in TINY_SIZES.items() if name != "pair_alexnet"}


def test_backbone_list_covers_every_registered_speaker_backbone():
    from facevox.registry import MODELS

    waveform_models = {"speaker_embedder", "speaker_pair", "speaker_siamese", "mlp", "pair_alexnet"}
    # the image tasks' models (a new model must be sorted into one of these sets or BACKBONES)
    image_models = {"resnet18", "resnet50", "spectral_logreg", "dcgan_generator", "sphere20", "iresnet18",
                    "iresnet50", "mobilefacenet"}
    voice_models = {"melgan_generator", "melgan_discriminator", "lcnn", "speech_spectral_logreg",
                    "wavegan_generator", "wavegan_discriminator"}  # facevox voice's, not speaker backbones
    assert set(MODELS.names()) - waveform_models - image_models - voice_models == set(BACKBONES)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_embedding_backbone_trains_on_generated_audio(backbone, corpus, tmp_path):
    from facevox.tasks.speaker.train import train_speaker

    kwargs = "{" + ", ".join(f"{k}: {v}" for k, v in BACKBONES[backbone].items()) + "}"
    features = "resemblyzer_mel" if backbone == "voice_encoder" else "fbank"
    cfg = load_config(SpeakerConfig, None, [*TINY, "train.max_steps=3", f"data.train={corpus}",
                                            f"model.backbone={backbone}", f"model.backbone_kwargs={kwargs}",
                                            f"model.features={features}", "model.n_mels=40", "model.specaugment=true"])
    train_speaker(cfg, tmp_path, resume=False)
    rows = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(np.isfinite(r["loss"]) for r in rows)


LIBRISPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-other"


@pytest.mark.realdata
@pytest.mark.skipif(not LIBRISPEECH.is_dir(), reason="needs ../shared/data/librispeech")
def test_shipped_resemblyzer_weights_in_tree_separate_real_speakers(tmp_path):
    """The in-tree encoder with Resemblyzer's shipped weights, scored the facevox way, on 4 real
    LibriSpeech test-other speakers x 3 utterances (all 66 pairs)."""
    pytest.importorskip("resemblyzer")
    from facevox.nets.voice_encoder import load_resemblyzer_weights
    from facevox.registry import create_model
    from facevox.tasks.speaker.evaluate import SpeakerScorer

    speakers = sorted(p for p in LIBRISPEECH.iterdir() if p.is_dir())[:4]
    corpus = tmp_path / "real"
    for spk in speakers:
        (corpus / spk.name).mkdir(parents=True)
        for f in sorted(spk.glob("*.flac"))[:3]:
            (corpus / spk.name / f.name).symlink_to(f)
    model = create_model("speaker_embedder", backbone="voice_encoder", features="resemblyzer_mel")
    load_resemblyzer_weights(model.backbone)
    from facevox.checkpoint import ModelCard, save_model

    folder = save_model(tmp_path / "model", model, config={}, extra={"scoring": {"window_seconds": 1.6}},
                        card=ModelCard(task="test", data="none", licence="MIT"))
    trials = make_trials(read_corpus(corpus), mode="all")
    scores = SpeakerScorer(folder).score_trials(trials, corpus, cache=False)
    labels = np.array([t.label for t in trials])
    # every same-speaker pair scores above every different-speaker pair but at most two
    assert np.sum(scores[labels == 0][:, None] >= scores[labels == 1][None, :]) <= 2


def test_hard_negatives_by_nearest_embedding(corpus):
    c = read_corpus(corpus)
    # speakers on a line: each one's nearest neighbours are the speakers next to it
    emb = {s: np.array([np.cos(0.3 * i), np.sin(0.3 * i)]) for i, s in enumerate(c.speakers)}
    trials = make_trials(c, mode="sampled", n=80, target_fraction=0.25, hard_negatives="nearest",
                         embeddings=emb, seed=0)
    index = {s: i for i, s in enumerate(c.speakers)}
    gaps = [abs(index[t.a.split("/")[0]] - index[t.b.split("/")[0]]) for t in trials if not t.label]
    # the default 3 nearest: within 2 places in the middle, within 3 at the two ends
    assert len(gaps) == 60 and max(gaps) <= 3 and np.mean(np.array(gaps) <= 2) > 0.7
    ends = [t for t in trials if not t.label and {t.a.split("/")[0], t.b.split("/")[0]} == {"spk000", "spk005"}]
    assert not ends  # the two farthest speakers are never paired
    with pytest.raises(FacevoxError, match="need a model"):
        make_trials(c, mode="sampled", n=10, hard_negatives="nearest")


def test_librispeech_speakers_txt_metadata(tmp_path):
    from facevox.tasks.speaker.corpus import read_metadata

    path = tmp_path / "SPEAKERS.TXT"
    path.write_text(";ID  |SEX| SUBSET           |MINUTES| NAME\n14   | F | train-clean-360  | 25.03 | A\n"
                    "17   | M | train-clean-360  | 25.04 | B\n")
    assert read_metadata(path, "sex") == {"14": "f", "17": "m"}
    path.write_text("nothing here\n")
    with pytest.raises(FacevoxError, match="no speaker metadata"):
        read_metadata(path, "sex")


def test_cli_trials_with_nearest_hard_negatives(corpus, tiny_model, tmp_path):
    out = tmp_path / "hard.txt"
    done = facevox("speaker", "trials", str(corpus), "--out", str(out), "--mode", "sampled", "--n", "30",
                   "--hard-negatives", "nearest", "--model", str(tiny_model), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_trials(out)) == 30


def test_far_threshold_never_exceeds_the_target():
    from facevox.metrics import threshold_at_far
    from facevox.verification.calibration import fit_calibration

    rng = np.random.default_rng(0)
    for n in (7, 50, 99, 1000):
        non = rng.normal(size=n)
        for far in (0.0, 0.01, 0.05, 0.5, 1.0):
            t = threshold_at_far(non, far)
            assert np.mean(non >= t) <= far + 1e-12
            # and it is the lowest such threshold: one step lower accepts one more non-target too many
            lower = np.max(non[non < t]) if np.any(non < t) else None
            if lower is not None:
                assert np.mean(non >= lower) > far
    with pytest.raises(FacevoxError, match="scoring.target_far"):
        fit_calibration(np.r_[np.zeros(3), np.ones(3)], np.r_[np.zeros(3), np.ones(3)], 1.5)


def test_eval_option_and_file_errors_come_first(corpus, tiny_model, tmp_path):
    trials = write_trials(tmp_path / "t.txt", make_trials(read_corpus(corpus), mode="all")[:5])
    base = ["speaker", "eval", str(trials), "--audio-root", str(corpus), "--model", str(tiny_model),
            "--out", str(tmp_path / "e")]
    for extra, words in ((["--cohort", str(corpus)], "--asnorm-top-k"), (["--asnorm-top-k", "5"], "cohort")):
        done = facevox(*base, *extra, cwd=tmp_path)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    missing = tmp_path / "m.txt"
    missing.write_text("1 spk000/utt00.wav spk000/nope.wav\n0 spk000/utt00.wav spk001/utt00.wav\n")
    done = facevox("speaker", "eval", str(missing), "--audio-root", str(corpus), "--model", str(tiny_model),
                   "--out", str(tmp_path / "e2"), cwd=tmp_path)
    assert done.returncode == 2 and "nope.wav: file not found" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("margin_type", "start"), [("additive", 0.0), ("multiplicative", 1.0)])
def test_margin_warmup_starts_from_no_margin(margin_type, start):
    from facevox.losses.base import margin_warmup
    from facevox.registry import create_loss

    loss = create_loss("sphereface2", embed_dim=4, num_classes=3, margin_type=margin_type)
    target = float(loss.margin)
    hook = margin_warmup(loss, target, 10)
    hook(0)
    assert loss.margin == pytest.approx(start)
    hook(5)
    assert loss.margin == pytest.approx((start + target) / 2)
    hook(20)
    assert loss.margin == pytest.approx(target)
