"""Adversarial attacks (facevox.attacks): FGSM/PGD move along the gradient and keep their budgets
exactly, PGD beats FGSM, the perceptual measures, the victims on tiny model folders, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import facevox
from facevox.attacks import budgets, create_attack
from facevox.attacks.gradient import torchattacks_available
from facevox.attacks.perceptual import PESQ_WB_MAX, example_measures, linf, pesq_wb, psnr, snr_db, ssim, stoi
from facevox.attacks.victims import FakeFaceVictim, SpeakerIdentificationVictim, SpeakerVerificationVictim
from facevox.checkpoint import ModelCard, save_model
from facevox.errors import FacevoxError

pytestmark = pytest.mark.usefixtures("one_thread")


class ModuleVictim:
    """A victim around any module (logits of the flattened or shaped input)."""

    def __init__(self, net: nn.Module, modality: str, num_classes: int) -> None:
        self.net, self.modality, self.num_classes = net, modality, num_classes

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def linear_victim(w: torch.Tensor, modality: str) -> ModuleVictim:
    """Two classes, logits [0, w . x]: the loss gradient of label 0 points along +w."""
    lin = nn.Linear(w.numel(), 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([torch.zeros_like(w), w]))
    return ModuleVictim(nn.Sequential(nn.Flatten(), lin), modality, 2)


@pytest.fixture(scope="module")
def w() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(48)


# --------------------------------------------------------------------------- gradient direction, budgets


@pytest.mark.parametrize("backend", ["facevox", "torchattacks"])
def test_fgsm_moves_along_the_known_gradient(w, backend):
    if backend == "torchattacks" and not torchattacks_available():
        pytest.skip("torchattacks is not installed")
    victim = linear_victim(w, "image")
    x = torch.full((3, 3, 4, 4), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    eps = 4 / 255
    d_inf = create_attack("fgsm", norm="linf", eps=eps, backend=backend).perturb(victim, x, y) - x
    assert torch.allclose(d_inf, (eps * w.sign()).expand(3, -1).reshape(x.shape), atol=1e-6)
    assert abs(d_inf.abs().max().item() - eps) < 1e-6
    d_l2 = create_attack("fgsm", norm="l2", eps=0.1, backend=backend).perturb(victim, x, y) - x
    assert torch.allclose(d_l2, (0.1 * w / w.norm()).expand(3, -1).reshape(x.shape), atol=1e-6)
    # targeted at class 1 descends CE(1): the same direction; at class 0 from label 1: the opposite
    d_t = create_attack("fgsm", norm="linf", eps=eps, backend=backend).perturb(victim, x, 1 - y, target=y) - x
    assert torch.allclose(d_t, -d_inf, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_keeps_image_budget_and_range(w, norm):
    victim = linear_victim(w, "image")
    torch.manual_seed(0)
    x = torch.rand(4, 3, 4, 4)
    x[0] = 0.0  # at the edge of [0, 1]: clamping must not leave the range
    y = torch.zeros(4, dtype=torch.long)
    eps = 8 / 255 if norm == "linf" else 0.3
    adv = create_attack("pgd", norm=norm, eps=eps, steps=5, seed=0, backend="facevox").perturb(victim, x, y)
    assert adv.min() >= 0 and adv.max() <= 1
    d = (adv - x).flatten(1)
    if norm == "linf":
        assert d.abs().max() <= eps + 1e-6 and abs(d[1:].abs().max().item() - eps) < 1e-6
    else:
        assert (d.norm(dim=1) <= eps + 1e-6).all()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_audio_snr_budget(w, norm):
    victim = linear_victim(w, "audio")
    torch.manual_seed(0)
    x = 0.5 * torch.rand(5, 48) - 0.25
    x[1] *= 0.01  # a quiet example gets a proportionally small radius
    y = torch.zeros(5, dtype=torch.long)
    for name, kw in (("fgsm", {}), ("pgd", {"steps": 7, "seed": 3})):
        adv = create_attack(name, norm=norm, snr_db=20.0, **kw).perturb(victim, x, y)
        assert adv.min() >= -1 and adv.max() <= 1
        r = budgets.snr_radius(x, 20.0, norm)
        if norm == "l2":
            assert (snr_db(x, adv) >= 20.0 - 1e-6).all()
            assert ((adv - x).norm(dim=1) <= r + 1e-6).all()
            assert torch.allclose(r, x.norm(dim=1) * 0.1)
        else:  # a peak budget: max|delta| <= max|x| * 10**(-snr/20)
            assert (linf(x, adv) <= r.double() + 1e-6).all()
            assert torch.allclose(r, x.abs().amax(dim=1) * 0.1)


def test_projection_is_exact():
    torch.manual_seed(0)
    d = torch.randn(6, 10)
    r = torch.rand(6) + 0.1
    p = budgets.project(d, "l2", r)
    inside = d.norm(dim=1) <= r
    assert torch.allclose(p.norm(dim=1), torch.where(inside, d.norm(dim=1), r), atol=1e-6)
    assert torch.allclose(p[~inside] / p[~inside].norm(dim=1, keepdim=True),
                          d[~inside] / d[~inside].norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(budgets.project(d, "linf", r), torch.max(torch.min(d, r[:, None]), -r[:, None]))


# --------------------------------------------------------------------------- PGD vs FGSM, the library


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    n, d, c = 256, 16, 3
    centers = torch.rand(c, d)
    y = torch.randint(0, c, (n,))
    x = (centers[y] + 0.08 * torch.randn(n, d)).clamp(0, 1).reshape(n, 1, 4, 4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, c))
    opt = torch.optim.Adam(net.parameters(), 0.03)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the one_thread fixture
    try:
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    net.eval().requires_grad_(False)
    return ModuleVictim(net, "image", c), x, y


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.15), ("l2", 0.6)])
def test_pgd_beats_fgsm(trained, norm, eps):
    victim, x, y = trained
    assert (victim.logits(x).argmax(1) == y).float().mean() > 0.95
    fgsm = create_attack("fgsm", norm=norm, eps=eps, backend="facevox").run(victim, x, y)
    pgd = create_attack("pgd", norm=norm, eps=eps, steps=20, random_start=False, backend="facevox").run(victim, x, y)
    assert pgd.success.sum() > fgsm.success.sum() > 0
    # targeted: every example pushed towards the next class
    target = (y + 1) % victim.num_classes
    hit = create_attack("pgd", norm=norm, eps=2 * eps, steps=20, seed=0, backend="facevox").run(victim, x, y, target)
    assert hit.success.float().mean() > 0.5 and torch.equal(hit.success, hit.adv_pred == target)


@pytest.mark.skipif(not torchattacks_available(), reason="torchattacks is not installed")
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_torchattacks_matches_the_in_tree_code(trained, norm):
    victim, x, y = trained
    x, y = x[:32], y[:32]
    eps = 0.1 if norm == "linf" else 0.4
    for name, kw in (("fgsm", {}), ("pgd", {"steps": 5, "random_start": False})):
        ours = create_attack(name, norm=norm, eps=eps, backend="facevox", **kw).perturb(victim, x, y)
        lib = create_attack(name, norm=norm, eps=eps, backend="torchattacks", **kw)
        assert lib.backend_for(victim) == "torchattacks"
        assert torch.allclose(lib.perturb(victim, x, y), ours, atol=1e-6)
        assert torch.allclose(lib.perturb(victim, x, y, target=(y + 1) % 3),
                              create_attack(name, norm=norm, eps=eps, backend="facevox", **kw)
                              .perturb(victim, x, y, target=(y + 1) % 3), atol=1e-6)


# --------------------------------------------------------------------------- perceptual measures


def _speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((180, 360, 540, 1100)))
    return (0.2 * tone * (1 + np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_perceptual_measures():
    pytest.importorskip("pesq")
    w = _speech_like()[None]
    assert abs(pesq_wb(w, w)[0] - PESQ_WB_MAX) < 1e-2 and round(float(pesq_wb(w, w)[0]), 2) == 4.64
    noisy = w + 0.02 * np.random.default_rng(1).standard_normal(w.shape).astype(np.float32)
    assert pesq_wb(w, noisy)[0] < 4.0
    assert torch.isinf(snr_db(w, w)).all()
    with pytest.raises(FacevoxError, match="16000"):
        pesq_wb(w, w, sr=8000)
    pytest.importorskip("pystoi")
    m = example_measures(w[0], noisy[0], "audio")
    assert set(m) == {"linf", "l2", "snr_db", "pesq_wb", "stoi"} and m["snr_db"] > 10
    img = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    assert set(example_measures(img, img * 0.9, "image")) == {"linf", "l2", "psnr", "ssim"}


def test_missing_measure_packages_are_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pesq", None)  # import pesq -> ImportError
    monkeypatch.setitem(sys.modules, "pystoi", None)
    w = _speech_like(0.5)[None]
    for fn, words in ((pesq_wb, "pip install"), (stoi, "pystoi")):
        with pytest.raises(FacevoxError, match=words) as err:
            fn(w, w)
        assert "\n" not in str(err.value)


def test_stoi_and_image_measures():
    pytest.importorskip("pystoi")
    w = _speech_like(1.5)[None]
    assert stoi(w, w)[0] > 0.99
    img = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(img, img)).all() and torch.allclose(ssim(img, img), torch.ones(2))
    assert torch.allclose(linf(img, img + 0.01).float(), torch.full((2,), 0.01), atol=1e-6)


# --------------------------------------------------------------------------- victims on tiny model folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("victims")
    torch.manual_seed(0)
    sp = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs={"channels": 8, "embed_dim": 4})
    torch.manual_seed(0)
    ff = facevox.create_model("resnet18", num_classes=1, width=8)
    sp_card = ModelCard(task="speaker verification (embedding model)", data="noise", licence="MIT")
    ff_card = ModelCard(task="GAN-generated face detection (output: P(fake))", data="noise", licence="MIT")
    return {
        "speaker": save_model(root / "sp", sp, card=sp_card, extra={"kind": "embedding"}),
        "fakeface": save_model(root / "ff", ff, card=ff_card,
                               extra={"task": "fakeface", "load_size": 32, "threshold": 0.5}),
    }


def _waves(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(n, 8000, generator=g)).clamp(-1, 1)


def test_speaker_victims_are_differentiable(folders):
    enrol = _waves(3, seed=1)
    ident = SpeakerIdentificationVictim(folders["speaker"], {"a": [enrol[0]], "b": [enrol[1].numpy(), enrol[2]]})
    x = _waves(2).requires_grad_(True)
    logits = ident.logits(x)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all() and logits.abs().max() <= ident.scale + 1e-5
    (g,) = torch.autograd.grad(logits[:, 0].sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    verif = SpeakerVerificationVictim(folders["speaker"], enrol[0], threshold=0.5)
    out = verif.logits(x)
    assert out.shape == (2, 2) and torch.isfinite(out).all() and (out[:, 0] == 0).all()
    assert torch.allclose(out[:, 1], verif.scale * (verif.cosine(x) - 0.5))
    # an SNR-budgeted PGD through the model's STFT front end
    y = ident.logits(x.detach()).argmax(1)
    res = create_attack("pgd", norm="l2", snr_db=30.0, steps=2, seed=0).run(ident, x.detach(), y)
    assert (snr_db(x.detach(), res.x_adv) >= 30.0 - 1e-6).all()


def test_fakeface_victim_matches_the_detector(folders):
    from facevox.image.transforms import to_tensor
    from facevox.tasks.fakeface.scoring import Detector

    det = Detector.load(str(folders["fakeface"]), device="cpu")
    victim = FakeFaceVictim(det)
    imgs = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert np.allclose(victim.fake_logit(to_tensor(list(imgs))).detach().numpy(), det.logits(list(imgs)), atol=1e-5)
    x = torch.rand(2, 3, 40, 48, requires_grad=True)  # resized inside logits()
    logits = victim.logits(x)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    (g,) = torch.autograd.grad(logits[:, 1].sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_victims_of_the_wrong_task(folders):
    with pytest.raises(FacevoxError, match="fakeface model folder") as err:
        SpeakerIdentificationVictim(folders["fakeface"], {"a": [_waves(1)[0]], "b": [_waves(1)[0]]})
    assert "\n" not in str(err.value)
    with pytest.raises(FacevoxError, match="speaker model folder"):
        FakeFaceVictim(folders["speaker"])
    with pytest.raises(FacevoxError, match="threshold"):
        SpeakerVerificationVictim(folders["speaker"], _waves(1)[0])


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(("name", "kwargs", "words"), [
    ("pgd", {"eps": 0.0}, "eps"),
    ("pgd", {"eps": -1.0}, "eps"),
    ("fgsm", {"snr_db": 0.0}, "snr_db"),
    ("pgd", {"snr_db": float("nan")}, "snr_db"),
    ("pgd", {}, "budget"),
    ("pgd", {"eps": 0.1, "snr_db": 30.0}, "budget"),
    ("pgd", {"eps": 0.1, "steps": 0}, "steps"),
    ("pgd", {"eps": 0.1, "norm": "l1"}, "norm"),
    ("pgd", {"eps": 0.1, "backend": "art"}, "backend"),
    ("pgd", {"eps": 0.1, "gamma": 1}, "gamma"),
    ("nope", {"eps": 0.1}, "unknown attack"),
])
def test_bad_attack_arguments(name, kwargs, words):
    with pytest.raises(FacevoxError) as err:
        create_attack(name, **kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_attack_inputs(w):
    image, audio = linear_victim(w, "image"), linear_victim(w, "audio")
    x, y = torch.full((2, 48), 0.5), torch.zeros(2, dtype=torch.long)
    cases = [
        (create_attack("pgd", snr_db=20.0), image, x, y, None, "snr_db"),
        (create_attack("pgd", eps=0.1), image, x + 1.0, y, None, "[0, 1]"),
        (create_attack("pgd", eps=0.1), image, x, y + 2, None, "class indices"),
        (create_attack("pgd", eps=0.1), image, x, y, torch.tensor([0.5, 1.0]), "target"),
        (create_attack("pgd", snr_db=20.0), audio, x * 3, y, None, "[-1, 1]"),
    ]
    for attack, victim, xx, yy, target, words in cases:
        with pytest.raises(FacevoxError) as err:
            attack.perturb(victim, xx, yy, target)
        assert words in str(err.value) and "\n" not in str(err.value)
