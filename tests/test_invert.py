"""GAN inversion: generators, the perceptual distance, FD, optimisation, the encoder and the hybrid,
on a tiny random generator (nz=8, 16x16 images) written into a helper module."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from facevox.config import TrainConfig
from facevox.errors import FacevoxError
from facevox.metrics import psnr
from facevox.tasks.invert.config import EncoderSettings, FeatureSettings, GeneratorSettings, InvertConfig, OptimSettings
from facevox.tasks.invert.encoder import encode, hybrid, load_encoder, train_encoder
from facevox.tasks.invert.evaluate import evaluate_inversion, inversion_metrics
from facevox.tasks.invert.fd import feature_fd, frechet_distance, gaussian_fit
from facevox.tasks.invert.generators import Generator, load_generator, sample_latents
from facevox.tasks.invert.optimise import optimise_latents
from facevox.tasks.invert.perceptual import RANDOM_RESNET18, load_feature_net, perceptual_distance

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only spin

# A tiny DCGAN-like generator, z (B, 8) -> (B, 3, 16, 16) in [-1, 1]. Its weights are drawn with gain
# 2 so that it is clearly non-linear (about a quarter of the pixels sit in tanh's flat tails), yet
# still injective: a Linear map from 8 to 256 numbers, then up-convolutions, LeakyReLU and tanh.
HELPER = '''
import torch
from torch import nn


class TinyGen(nn.Module):
    def __init__(self, nz=8, ngf=4):
        super().__init__()
        self.nz, self.ngf = nz, ngf
        self.fc = nn.Linear(nz, 4 * ngf * 4 * 4)
        self.up = nn.Sequential(nn.LeakyReLU(0.2), nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1), nn.LeakyReLU(0.2),
                                nn.ConvTranspose2d(2 * ngf, 3, 4, 2, 1), nn.Tanh())
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 2.0 / m.weight.shape[1] ** 0.5)
            elif isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 2.0 / (4 * m.weight.shape[0]) ** 0.5)

    def forward(self, z):
        return self.up(self.fc(z).view(z.shape[0], 4 * self.ngf, 4, 4))


def tiny(nz=8):
    torch.manual_seed(0)
    return TinyGen(nz)


def other():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16))


def features():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
'''

GEN = "tiny_invert_gen:tiny"


@pytest.fixture(scope="module")
def helper_path(tmp_path_factory):
    """Folder holding the module ``tiny_invert_gen``, on sys.path for this module's tests."""
    folder = tmp_path_factory.mktemp("helper")
    (folder / "tiny_invert_gen.py").write_text(textwrap.dedent(HELPER))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("tiny_invert_gen", None)


@pytest.fixture
def gen(helper_path) -> Generator:
    return load_generator(GEN, nz=8)


def tiny_config(tmp_path=None, **optim) -> InvertConfig:
    return InvertConfig(
        generator=GeneratorSettings(source=GEN, nz=8),
        features=FeatureSettings(network=RANDOM_RESNET18),
        encoder=EncoderSettings(width=8, samples_per_epoch=64),
        optim=OptimSettings(log_every=0, **optim),
        train=TrainConfig(max_steps=30, batch_size=8, lr=3e-3, precision="fp32", progress=False, ckpt_every=1000),
        device="cpu",
    )


# ------------------------------------------------------------------------------------------ generators


def test_generator_wrapper(gen):
    assert gen.nz == 8 and gen.image_size == (16, 16)
    z = sample_latents(4, 8, seed=3)
    assert torch.equal(z, sample_latents(4, 8, seed=3))
    x = gen(z)
    assert x.shape == (4, 3, 16, 16) and x.min() >= 0.0 and x.max() <= 1.0  # tanh's [-1, 1] mapped to [0, 1]
    assert not any(p.requires_grad for p in gen.parameters())
    gen.train()
    assert not gen.net.training  # always frozen
    raw = gen.net(z)
    half = load_generator(GEN, nz=8, output_range=(-1.0, 3.0))  # a wider range: half the [0, 1] span
    assert torch.allclose(half(z), (raw + 1) / 4)
    assert gen.spec == {"source": GEN, "weights": "", "nz": 8, "output_range": [-1.0, 1.0]}


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_generator_torchscript_and_errors(gen, tmp_path):
    path = tmp_path / "g.pt"
    torch.jit.script(gen.net).save(str(path))
    scripted = load_generator(str(path), nz=8)
    z = sample_latents(2, 8)
    assert torch.allclose(scripted(z), gen(z), atol=1e-6)
    with pytest.raises(FacevoxError, match="generator not found"):
        load_generator(str(tmp_path / "missing.pt"))
    with pytest.raises(FacevoxError, match="cannot import"):
        load_generator("no_such_module_xyz:make", nz=8)
    with pytest.raises(FacevoxError, match="has no attribute"):
        load_generator("tiny_invert_gen:nothing", nz=8)
    with pytest.raises(FacevoxError, match="does not take z of size 5"):
        load_generator("tiny_invert_gen:other", nz=5)


def test_weights_that_do_not_fit_name_the_file(gen, tmp_path):
    good = tmp_path / "good.pt"
    torch.save(gen.net.state_dict(), good)
    assert load_generator(GEN, nz=8, weights=good).image_size == (16, 16)
    foreign = tmp_path / "foreign.pt"
    torch.save(nn.Linear(8, 16).state_dict(), foreign)
    wide = tmp_path / "wide.pt"
    state = gen.net.state_dict()
    state["fc.weight"] = torch.zeros(10, 8)
    torch.save(state, wide)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for path, problem in ((foreign, "do not fit"), (wide, r"shape of fc.weight"), (junk, "cannot read")):
        with pytest.raises(FacevoxError, match=problem) as err:
            load_generator(GEN, nz=8, weights=path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FacevoxError, match="do not fit the DCGAN"):
        load_generator("dcgan-face", weights=foreign)


# ------------------------------------------------------------------------------------------ perceptual, FD


def test_perceptual_distance_zero_for_identical_images(gen, helper_path):
    x = gen(sample_latents(3, 8, 0))
    y = gen(sample_latents(3, 8, 1))
    nets = [load_feature_net(RANDOM_RESNET18),
            load_feature_net("tiny_invert_gen:features", stages=["0", "2"]),
            load_feature_net(RANDOM_RESNET18, input_size=48)]
    for net in nets:
        assert torch.allclose(perceptual_distance(net, x, x), torch.zeros(3), atol=1e-6)
        d = perceptual_distance(net, x, y)
        assert d.shape == (3,) and (d > 1e-4).all() and (d <= 4.0).all()
        assert net.pooled(x).ndim == 2
    assert load_feature_net("none") is None
    with pytest.raises(FacevoxError, match="no module 'layer9'"):
        load_feature_net(RANDOM_RESNET18, stages=["layer9"])
    with pytest.raises(FacevoxError, match="feature network not found"):
        load_feature_net("nowhere/at/all")


def test_feature_networks_from_model_folders(gen, tmp_path):
    from facevox.checkpoint import ModelCard, save_model
    from facevox.registry import create_model

    card = ModelCard(task="x", data="x", licence="x")
    detector = save_model(tmp_path / "det", create_model("resnet18", num_classes=1, width=8), card=card,
                          extra={"task": "fakeface", "load_size": 40})
    embedder = save_model(tmp_path / "emb", create_model("mobilefacenet", embed_dim=8, input_size=(16, 16), width=4),
                          card=card, extra={"task": "face", "input_size": [16, 16]})
    x, y = gen(sample_latents(2, 8, 0)), gen(sample_latents(2, 8, 1))
    for folder, name, size, n_stages in ((detector, "fakeface-resnet18", (40, 40), 4),
                                         (embedder, "face-mobilefacenet", (16, 16), 3)):
        net = load_feature_net(str(folder))
        assert net.name == name and net.input_size == size and len(net(x)) == n_stages
        assert perceptual_distance(net, x, x).abs().max() < 1e-6 and (perceptual_distance(net, x, y) > 0).all()


def test_perceptual_distance_has_gradients(gen):
    net = load_feature_net(RANDOM_RESNET18)
    z = sample_latents(2, 8, 0).requires_grad_(True)
    perceptual_distance(net, gen(z), gen(sample_latents(2, 8, 1))).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_frechet_distance_closed_form():
    # two Gaussians with diagonal covariances: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = 1.0 + 0.0 + 4.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (0.5 - 1) ** 2
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # a rotation of both leaves it unchanged; the same Gaussian gives 0
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([3.0], [[9.0]], [1.0], [[1.0]]) == pytest.approx(4.0 + 4.0)


def test_frechet_distance_of_samples_and_singular_covariances():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 2))
    b = rng.normal(0, 2, (4000, 2)) + np.array([1.0, 0.0])
    assert feature_fd(a, b) == pytest.approx(1.0 + 2 * (2 - 1) ** 2, rel=0.05)
    few = rng.normal(size=(5, 16))  # 5 samples in 16 dimensions: rank-4 covariances
    other = rng.normal(size=(6, 16)) + 0.5
    fd = feature_fd(few, other)  # computed in the 10-dimensional span of the samples
    assert np.isfinite(fd) and fd > 0
    assert fd == pytest.approx(frechet_distance(*gaussian_fit(few), *gaussian_fit(other)), rel=1e-4)
    assert feature_fd(few, few) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(FacevoxError, match="N >= 2"):
        gaussian_fit(np.zeros((1, 3)))


# ------------------------------------------------------------------------------------------ optimisation


def test_optimisation_recovers_a_known_z(gen):
    # Pixel loss only, 300 Adam steps, 2 starts. The generator is injective with a well-conditioned
    # Jacobian (8 -> 768), so the pixel loss has its minimum at the true z; a random z is off by
    # about sqrt(2) |z|. We ask for every latent within 10% of |z| (typically < 3% here).
    z = sample_latents(8, 8, seed=1)
    with torch.no_grad():
        targets = gen(z)
    result = optimise_latents(gen, targets, OptimSettings(steps=300, lr=0.05, perceptual=0, restarts=2, log_every=0))
    rel = (result.latents - z).norm(dim=1) / z.norm(dim=1)
    assert rel.max() < 0.1, rel
    assert result.latents.shape == (8, 8) and result.images.shape == (8, 3, 16, 16)
    assert result.seconds > 0 and result.losses.max() < 1e-3
    m = inversion_metrics(targets, result, z_true=z)
    assert m["psnr"] > 30 and m["latent_error_rel"] < 0.1


def test_restarts_keep_the_best_and_prior_shrinks_z(gen):
    targets = gen(sample_latents(4, 8, seed=2)).detach()
    lines = []
    one = optimise_latents(gen, targets, OptimSettings(steps=10, perceptual=0, restarts=1, batch_size=3, log_every=5),
                           progress=lines.append)
    three = optimise_latents(gen, targets, OptimSettings(steps=10, perceptual=0, restarts=3, batch_size=3, log_every=0))
    assert (three.losses <= one.losses + 1e-9).all()  # the same first start, plus two more
    assert len(lines) == 4 and "step 5/10" in lines[0]  # 2 batches x 2 progress lines
    free = optimise_latents(gen, targets, OptimSettings(steps=30, perceptual=0, log_every=0))
    pulled = optimise_latents(gen, targets, OptimSettings(steps=30, perceptual=0, prior=10.0, log_every=0))
    assert pulled.latents.norm(dim=1).mean() < free.latents.norm(dim=1).mean()


def test_optimisation_with_perceptual_loss(gen):
    z = sample_latents(2, 8, seed=4)
    targets = gen(z).detach()
    features = load_feature_net(RANDOM_RESNET18)
    start = optimise_latents(gen, targets, OptimSettings(steps=0, log_every=0), features)
    done = optimise_latents(gen, targets, OptimSettings(steps=40, log_every=0), features)
    assert (done.losses < start.losses).all()
    with pytest.raises(FacevoxError, match="needs a feature network"):
        optimise_latents(gen, targets, OptimSettings(steps=1, log_every=0), None)
    with pytest.raises(FacevoxError, match="generator draws"):
        optimise_latents(gen, torch.zeros(1, 3, 8, 8), OptimSettings(steps=1, perceptual=0))


# ------------------------------------------------------------------------------------------ encoder, hybrid


def test_encoder_trains_and_hybrid_improves_on_it(helper_path, tmp_path):
    cfg = tiny_config()
    result = train_encoder(cfg, tmp_path / "enc")
    rows = [json.loads(line) for line in (tmp_path / "enc" / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 30 and {"z_loss", "pixel_loss", "perceptual_loss"} <= set(rows[0])
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    folder = result["model"]
    extra = json.loads((folder / "extra.json").read_text())
    assert extra["generator"]["source"] == GEN and extra["nz"] == 8 and extra["input_size"] == [16, 16]
    assert extra["features"]["name"] == RANDOM_RESNET18
    assert "heldout_latent_error" in json.loads((folder / "metrics.json").read_text())

    encoder = load_encoder(folder)
    gen = load_generator(GEN, nz=8)
    z = sample_latents(6, 8, seed=5)
    targets = gen(z).detach()
    first = encode(encoder, gen, targets)
    assert first.latents.shape == (6, 8) and first.losses is None
    # the hybrid keeps the best z it saw, starting from the encoder's: never worse on its (pixel) loss
    refined = hybrid(encoder, gen, targets, OptimSettings(hybrid_steps=20, perceptual=0, log_every=0))
    mse = lambda r: (r.images - targets).pow(2).flatten(1).mean(1)  # noqa: E731
    assert (mse(refined) <= mse(first) + 1e-6).all() and mse(refined).mean() < mse(first).mean()
    assert refined.seconds >= first.seconds * 0.5
    with pytest.raises(FacevoxError, match="not an inversion encoder"):
        load_encoder(_fake_folder(tmp_path))


def _fake_folder(tmp_path):
    from facevox.checkpoint import ModelCard, save_model
    from facevox.registry import create_model

    return save_model(tmp_path / "other", create_model("mlp", in_dim=2, out_dim=2),
                      card=ModelCard(task="x", data="x", licence="x"), extra={"task": "speaker"})


def test_eval_on_a_folder_of_images(helper_path, tmp_path):
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(((30, 30), (18, 22), (64, 40))):  # any size: resized to the generator's 16x16
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"photo{i}.png")
    cfg = tiny_config(steps=3)
    doc = evaluate_inversion(cfg, tmp_path / "eval", methods=["optim"], images=images)
    m = doc["methods"]["optim"]
    assert m["n_images"] == 3 and "latent_error" not in m and m["fd"] >= 0  # no known z for real images
    header = doc["table"]["header"]
    assert header[:3] == ["method", "PSNR (dB)", "SSIM"] and "FD (random-resnet18)" in header
    assert (tmp_path / "eval" / "report.html").is_file() and (tmp_path / "eval" / "table.md").is_file()
    with pytest.raises(FacevoxError, match="need a trained encoder"):
        evaluate_inversion(cfg, tmp_path / "eval2", methods=["optim", "hybrid"], images=images)
    with pytest.raises(FacevoxError, match="unknown method 'best'"):
        evaluate_inversion(cfg, tmp_path / "eval2", methods=["best"], images=images)
    assert not (tmp_path / "eval2").exists()


def test_encoder_training_resumes_exactly(helper_path, tmp_path):
    cfg = tiny_config()
    cfg.train.max_steps = 6
    cfg.train.ckpt_every = 3
    cfg.encoder.perceptual_loss = 0.0
    full = load_encoder(train_encoder(cfg, tmp_path / "full")["model"])
    cfg.train.max_steps = 3
    train_encoder(cfg, tmp_path / "half")
    cfg.train.max_steps = 6
    resumed = load_encoder(train_encoder(cfg, tmp_path / "half")["model"])
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ------------------------------------------------------------------------------------------ the real generator


@pytest.mark.skipif(importlib.util.find_spec("gan_face_generate") is None, reason="gan-face-generate not installed")
def test_dcgan_face_generator_inverts_its_own_face():
    gen = load_generator("dcgan-face")
    assert gen.nz == 100 and gen.image_size == (64, 64)
    z = sample_latents(1, 100, seed=7)
    with torch.no_grad():
        target = gen(z).clamp(0, 1)
    start = sample_latents(1, 100, seed=8)
    with torch.no_grad():
        before = float(psnr(gen(start).clamp(0, 1), target)[0])
    result = optimise_latents(gen, target, OptimSettings(steps=30, lr=0.05, perceptual=0, log_every=0),
                              z_init=start)
    after = float(psnr(result.images, target)[0])
    assert after > before + 2.0, (before, after)
