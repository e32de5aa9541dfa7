"""Known answers, gradients and stability for the face losses: NormFace, SphereFace, SphereFace-R."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from facevox.losses.normface import NormFace
from facevox.losses.sphereface import SphereFace, safe_acos, sphereface_lambda, sphereface_psi
from facevox.losses.sphereface_r import FEATURE_NORMS, MARGIN_TYPES, SphereFaceR, margin_cosines
from facevox.registry import create_loss

R_CASES = list(itertools.product(MARGIN_TYPES, FEATURE_NORMS))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only spin


def _data(seed: int = 0, n: int = 12, d: int = 6, c: int = 4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, c, (n,), generator=g)


def _set_basis(loss_fn) -> None:
    with torch.no_grad():
        loss_fn.weight.copy_(torch.eye(loss_fn.num_classes, loss_fn.embed_dim))


def _ce(logits: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in logits)) - logits[y]


# ---------------------------------------------------------------- reductions to plain softmaxes


def test_normface_is_scaled_cosine_softmax():
    torch.manual_seed(0)
    loss_fn = create_loss("normface", embed_dim=6, num_classes=4, scale=12.0)
    emb, labels = _data()
    want = F.cross_entropy(12.0 * F.normalize(emb, dim=1) @ F.normalize(loss_fn.weight, dim=1).T, labels)
    torch.testing.assert_close(loss_fn(emb, labels), want)
    torch.testing.assert_close(loss_fn.logits(emb), 12.0 * loss_fn.cosine(emb))
    assert loss_fn.margin == 0.0 and loss_fn.scale == 12.0


@pytest.mark.parametrize("lamb", [0.0, 5.0, 1000.0])
def test_sphereface_margin_one_is_unnormalised_feature_softmax(lamb):
    torch.manual_seed(0)
    loss_fn = create_loss("sphereface", embed_dim=6, num_classes=4, margin=1)
    loss_fn.lamb = lamb
    emb, labels = _data()
    want = F.cross_entropy(emb @ F.normalize(loss_fn.weight, dim=1).T, labels)  # ||x|| cos(theta_j)
    torch.testing.assert_close(loss_fn(emb, labels), want)
    torch.testing.assert_close(loss_fn.logits(emb), emb @ F.normalize(loss_fn.weight, dim=1).T)


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
@pytest.mark.parametrize("detach", [False, True])
def test_sphereface_r_margin_one_hard_is_normface(margin_type, detach):
    torch.manual_seed(0)
    loss_fn = SphereFaceR(6, 4, scale=16.0, margin=1.0, margin_type=margin_type, feature_norm="hard", detach=detach)
    ref = NormFace(6, 4, scale=16.0)
    with torch.no_grad():
        ref.weight.copy_(loss_fn.weight)
    emb, labels = _data()
    torch.testing.assert_close(loss_fn(emb, labels), ref(emb, labels))
    torch.testing.assert_close(loss_fn.logits(emb), ref.logits(emb))


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
@pytest.mark.parametrize("feature_norm", ["none", "soft"])
def test_sphereface_r_margin_one_unnormalised(margin_type, feature_norm):
    """m = 1 without hard normalisation: CE of ||x|| cos(theta_j), plus t mean |‖x‖ - s| when soft."""
    torch.manual_seed(0)
    loss_fn = SphereFaceR(
        6, 4, scale=2.0, margin=1.0, margin_type=margin_type, feature_norm=feature_norm, norm_weight=0.3
    )
    emb, labels = _data()
    norm = emb.norm(dim=1)
    want = F.cross_entropy(norm[:, None] * loss_fn.cosine(emb), labels)
    if feature_norm == "soft":
        want = want + 0.3 * (norm - 2.0).abs().mean()
    torch.testing.assert_close(loss_fn(emb, labels), want)


# ---------------------------------------------------------------- known answers with margins


@pytest.mark.parametrize(("theta", "lamb"), [(0.3, 0.0), (0.3, 2.0), (1.0, 0.0), (2.9, 3.0)])
def test_sphereface_by_hand(theta, lamb):
    r = 1.7
    loss_fn = SphereFace(2, 2, margin=4)
    _set_basis(loss_fn)
    loss_fn.lamb = lamb
    k = math.floor(4 * theta / math.pi)
    psi = (-1) ** k * math.cos(4 * theta) - 2 * k
    target = r * (lamb * math.cos(theta) + psi) / (1 + lamb)
    other = r * math.sin(theta)  # the angle to (0, 1) is pi/2 - theta
    emb = torch.tensor([[r * math.cos(theta), r * math.sin(theta)]])
    assert loss_fn(emb, torch.tensor([0])).item() == pytest.approx(_ce([target, other], 0), rel=1e-5)


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
def test_sphereface_r_by_hand(margin_type):
    s, m, theta = 2.0, 1.5, 2.5  # m theta / pi = 1.19: in v0's second piece (k = 1), past v1's stop
    loss_fn = SphereFaceR(2, 2, scale=s, margin=m, margin_type=margin_type, feature_norm="hard")
    _set_basis(loss_fn)
    theta_other = abs(math.pi / 2 - theta)
    target, other = {
        "v0": (-math.cos(m * theta) - 2.0, math.cos(theta_other)),
        "v1": (-1.0, math.cos(theta_other)),
        "v2": (math.cos(theta), math.cos(theta_other / m)),
    }[margin_type]
    emb = torch.tensor([[3.0 * math.cos(theta), 3.0 * math.sin(theta)]])  # the norm is ignored (hard)
    got = loss_fn(emb, torch.tensor([0])).item()
    assert got == pytest.approx(_ce([s * target, s * other], 0), rel=1e-5)


# ---------------------------------------------------------------- the margin functions


@pytest.mark.parametrize("m", [1, 2, 3, 4, 1.4, 1.5, 2.5])
def test_psi_is_monotone_and_cos_m_theta_first(m):
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    psi = sphereface_psi(torch.cos(theta), m)
    assert (psi.diff() < 0).all()
    first = theta <= math.pi / m
    torch.testing.assert_close(psi[first], torch.cos(m * theta[first]), atol=1e-5, rtol=0)
    assert psi[0].item() == pytest.approx(1.0)
    if float(m).is_integer():
        assert psi[-1].item() == pytest.approx(1.0 - 2.0 * m)  # (-1)^(m-1) cos(m pi) - 2 (m - 1)


@pytest.mark.parametrize("m", [1.0, 1.4, 2.0])
def test_sphereface_r_margin_functions(m):
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    cos = torch.stack([torch.cos(theta), torch.cos(theta)], dim=1)  # column 0 the target, 1 a non-target
    labels = torch.zeros(len(theta), dtype=torch.long)
    first = theta <= math.pi / m
    v1 = margin_cosines(cos, labels, m, "v1")
    assert (v1[:, 0].diff() <= 1e-12).all()
    torch.testing.assert_close(v1[first, 0], torch.cos(m * theta[first]), atol=1e-5, rtol=0)
    assert (v1[~first, 0] == -1.0).all()
    torch.testing.assert_close(v1[:, 1], cos[:, 1])  # v1 leaves non-targets alone
    v2 = margin_cosines(cos, labels, m, "v2")
    torch.testing.assert_close(v2[:, 0], cos[:, 0])  # v2 leaves the target alone
    torch.testing.assert_close(v2[:, 1], torch.cos(theta / m), atol=1e-5, rtol=0)
    assert (v2[:, 1].diff() < 0).all() and (v2[:, 1] >= cos[:, 1] - 1e-6).all()
    v0 = margin_cosines(cos, labels, m, "v0")
    torch.testing.assert_close(v0[:, 0], sphereface_psi(cos[:, 0], m))


# ---------------------------------------------------------------- gradients


def _gradcheck(loss_fn, seed: int = 1) -> None:
    loss_fn = loss_fn.double()
    emb, labels = _data(seed, n=4, d=3, c=3, dtype=torch.float64)
    emb.requires_grad_(True)
    weight = loss_fn.weight.detach().clone().requires_grad_(True)
    # away from the pieces' joins (v0: m theta = k pi; v1: m theta = pi) and acos' clamp
    cos = F.cosine_similarity(emb[:, None, :], weight[None, :, :], dim=2)
    m = float(getattr(loss_fn, "margin", 1.0) or 1.0)
    frac = (m * torch.acos(cos) / math.pi) % 1.0
    assert ((frac > 1e-3) & (frac < 1 - 1e-3)).all() and (cos.abs() < 1 - 1e-4).all()

    def f(e, w):
        return functional_call(loss_fn, {"weight": w}, (e, labels))

    assert torch.autograd.gradcheck(f, (emb, weight))


def test_gradients_normface():
    torch.manual_seed(0)
    _gradcheck(NormFace(3, 3, scale=4.0))


@pytest.mark.parametrize(("m", "lamb"), [(4, 0.0), (4, 3.0), (2, 0.0), (1.5, 0.5)])
def test_gradients_sphereface(m, lamb):
    torch.manual_seed(0)
    loss_fn = SphereFace(3, 3, margin=m)
    loss_fn.lamb = lamb
    _gradcheck(loss_fn)


@pytest.mark.parametrize(("margin_type", "feature_norm"), R_CASES)
def test_gradients_sphereface_r(margin_type, feature_norm):
    """Exact gradients (detach=False); with CGD the gradient is by design not the value's derivative."""
    torch.manual_seed(0)
    loss_fn = SphereFaceR(
        3, 3, scale=4.0, margin=1.5, margin_type=margin_type, feature_norm=feature_norm, detach=False, norm_weight=0.1
    )
    _gradcheck(loss_fn)


# ---------------------------------------------------------------- stability


def _extremes():
    """Unit class weights e0, e1, e2; embeddings at angle 0 and pi to them, with norms 1, 1e4, 1e-6."""
    rows, labels = [], []
    for y, norm in itertools.product(range(3), [1.0, 1e4, 1e-6]):
        for sign in (1.0, -1.0):
            rows.append(sign * norm * torch.eye(3)[y])
            labels.append(y)
    rows.append(1e4 * torch.eye(3)[0])  # huge and exactly on the wrong class
    labels.append(1)
    return torch.stack(rows), torch.tensor(labels)


def _assert_finite_at_extremes(loss_fn) -> None:
    _set_basis(loss_fn)
    emb, labels = _extremes()
    emb.requires_grad_(True)
    loss = loss_fn(emb, labels)
    loss.backward()
    assert torch.isfinite(loss), loss
    assert torch.isfinite(emb.grad).all() and torch.isfinite(loss_fn.weight.grad).all()


def test_normface_finite_at_extremes():
    _assert_finite_at_extremes(NormFace(3, 3, scale=64.0))


@pytest.mark.parametrize("m", [1, 2, 4, 1.5])
@pytest.mark.parametrize("lamb", [0.0, 5.0, 1000.0])
def test_sphereface_finite_at_extremes(m, lamb):
    loss_fn = SphereFace(3, 3, margin=m)
    loss_fn.lamb = lamb
    _assert_finite_at_extremes(loss_fn)


@pytest.mark.parametrize(("margin_type", "feature_norm"), R_CASES)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("m", [1.0, 1.4, 4.0])
def test_sphereface_r_finite_at_extremes(margin_type, feature_norm, detach, m):
    loss_fn = SphereFaceR(3, 3, scale=64.0, margin=m, margin_type=margin_type, feature_norm=feature_norm, detach=detach)
    _assert_finite_at_extremes(loss_fn)


def test_psi_gradient_finite_at_plus_minus_one():
    for m in (1, 2, 4, 1.5):
        cos = torch.tensor([1.0, -1.0, 1.0 - 1e-7, -1.0 + 1e-7], dtype=torch.float64, requires_grad=True)
        sphereface_psi(cos, m).sum().backward()
        assert torch.isfinite(cos.grad).all()
    cos = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    sphereface_psi(cos, 4).sum().backward()
    torch.testing.assert_close(cos.grad, torch.tensor([16.0, 16.0], dtype=torch.float64))  # T_4'(+-1) = +-16 * +-1


def test_safe_acos_is_exact_with_finite_slope():
    cos = torch.tensor([1.0, -1.0, 0.5, 1.0 - 1e-8], requires_grad=True)
    theta = safe_acos(cos)
    torch.testing.assert_close(theta.detach(), torch.acos(cos.detach()))
    theta.sum().backward()
    assert torch.isfinite(cos.grad).all() and cos.grad[2].item() == pytest.approx(-1 / math.sqrt(0.75))


@pytest.mark.parametrize("name", ["normface", "sphereface", "sphereface_r"])
def test_loss_runs_in_fp32_under_autocast(name):
    loss_fn = create_loss(name, embed_dim=4, num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(torch.randn(5, 4).bfloat16(), torch.tensor([0, 1, 2, 0, 1]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


# ---------------------------------------------------------------- SphereFace's annealing


def test_annealing_schedule():
    assert sphereface_lambda(0) == 1000.0
    assert sphereface_lambda(10) == pytest.approx(1000.0 / 2.2)
    values = [sphereface_lambda(t) for t in range(0, 2000, 7)]
    assert all(a >= b for a, b in itertools.pairwise(values)) and values[-1] == 5.0
    # base / (1 + gamma t) = lambda_min at t = (200 - 1) / 0.12 = 1658.3
    assert sphereface_lambda(1658) > 5.0 and sphereface_lambda(1659) == 5.0
    assert sphereface_lambda(10**9) == 5.0
    assert sphereface_lambda(3, base=10.0, gamma=1.0, power=2.0, lambda_min=0.0) == pytest.approx(10.0 / 16)


def test_anneal_hook_and_lamb_change_the_loss():
    torch.manual_seed(0)
    loss_fn = create_loss("sphereface", embed_dim=6, num_classes=4)
    assert loss_fn.lamb == 1000.0 and loss_fn.margin == 4
    emb, labels = _data()
    start = loss_fn(emb, labels)
    loss_fn.anneal(100)
    assert loss_fn.lamb == pytest.approx(1000.0 / 13.0)
    mid = loss_fn(emb, labels)
    loss_fn.lamb = 0.0  # the pure A-Softmax: psi <= cos, so the loss only grows as lambda shrinks
    end = loss_fn(emb, labels)
    assert start < mid < end


# ---------------------------------------------------------------- SphereFace-R's CGD and margins


@pytest.mark.parametrize(("margin_type", "feature_norm"), R_CASES)
def test_cgd_keeps_the_value(margin_type, feature_norm):
    torch.manual_seed(0)
    loss_fn = SphereFaceR(6, 4, scale=8.0, margin=1.7, margin_type=margin_type, feature_norm=feature_norm)
    emb, labels = _data()
    with_cgd = loss_fn(emb, labels)
    loss_fn.detach = False
    torch.testing.assert_close(with_cgd, loss_fn(emb, labels))


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
def test_cgd_gradient_is_the_plain_logits_gradient(margin_type):
    """Hard normalisation: d(margin logits) = d(s cos theta), for every class column."""
    torch.manual_seed(0)
    loss_fn = SphereFaceR(6, 4, scale=8.0, margin=1.7, margin_type=margin_type, feature_norm="hard").double()
    emb, labels = _data(dtype=torch.float64)
    emb.requires_grad_(True)
    probe = torch.randn(12, 4, dtype=torch.float64)
    params = (emb, loss_fn.weight)
    got = torch.autograd.grad((loss_fn.margin_logits(emb, labels) * probe).sum(), params)
    want = torch.autograd.grad((loss_fn.logits(emb) * probe).sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    # the forward values do carry the margin
    assert not torch.allclose(loss_fn.margin_logits(emb, labels), loss_fn.logits(emb))


@pytest.mark.parametrize(("margin_type", "feature_norm"), R_CASES)
def test_cgd_loss_gradient(margin_type, feature_norm):
    """The loss's gradient equals that of CE(r (cos + d)) with the margin's shift d held constant,
    and (m > 1) differs from the exact gradient."""
    torch.manual_seed(0)
    loss_fn = SphereFaceR(
        6, 4, scale=8.0, margin=1.7, margin_type=margin_type, feature_norm=feature_norm, norm_weight=0.1
    ).double()
    emb, labels = _data(dtype=torch.float64)
    emb.requires_grad_(True)
    params = (emb, loss_fn.weight)
    got = torch.autograd.grad(loss_fn(emb, labels), params)

    cos = loss_fn.cosine(emb)
    shift = (margin_cosines(cos, labels, 1.7, margin_type) - cos).detach()
    norm = emb.norm(dim=1, keepdim=True)
    r = 8.0 if feature_norm == "hard" else norm
    ref = F.cross_entropy(r * (cos + shift), labels)
    if feature_norm == "soft":
        ref = ref + 0.1 * (norm - 8.0).abs().mean()
    want = torch.autograd.grad(ref, params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)

    loss_fn.detach = False
    exact = torch.autograd.grad(loss_fn(emb, labels), params)
    assert not torch.allclose(exact[0], got[0])


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
@pytest.mark.parametrize("detach", [False, True])
def test_sphereface_r_margin_is_an_attribute(margin_type, detach):
    torch.manual_seed(0)
    loss_fn = create_loss(
        "sphereface_r", embed_dim=6, num_classes=4, scale=8.0, margin=1.0, margin_type=margin_type, detach=detach
    )
    assert loss_fn.neutral_margin == 1.0
    emb, labels = _data()
    before = loss_fn(emb, labels)
    loss_fn.margin = 1.5  # v0 / v1 lower the target logit, v2 raises the others: the loss grows
    assert loss_fn(emb, labels) > before


def test_sphereface_margin_is_an_attribute():
    torch.manual_seed(0)
    loss_fn = create_loss("sphereface", embed_dim=6, num_classes=4, margin=1)
    loss_fn.lamb = 0.0
    emb, labels = _data()
    before = loss_fn(emb, labels)
    loss_fn.margin = 4
    after = loss_fn(emb, labels)
    loss_fn.margin = 2.5  # a warm-up passes through non-integer margins
    assert before < loss_fn(emb, labels) < after


def test_defaults_and_bad_arguments():
    r = create_loss("sphereface_r", embed_dim=8, num_classes=5)
    assert (r.margin_type, r.feature_norm, r.scale, r.margin, r.detach) == ("v2", "hard", 60.0, 1.4, True)
    assert create_loss("normface", embed_dim=8, num_classes=5).scale == 30.0
    with pytest.raises(ValueError, match="margin_type"):
        SphereFaceR(4, 3, margin_type="v3")
    with pytest.raises(ValueError, match="feature_norm"):
        SphereFaceR(4, 3, feature_norm="l2")
    with pytest.raises(ValueError, match="margin"):
        SphereFaceR(4, 3, margin=0.5)
    with pytest.raises(ValueError, match="margin"):
        SphereFace(4, 3, margin=0)
    with pytest.raises(ValueError, match="margin"):
        sphereface_psi(torch.zeros(2), 0.5)
