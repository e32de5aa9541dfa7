"""Known answers, stability and a toy training run for SphereFace2, MP/MMP and the pair losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facevox.losses.mask_proxy import MaskProxy, MultinomialMaskProxy
from facevox.losses.pair import ContrastiveLoss, PairBCE
from facevox.losses.sphereface2 import SphereFace2
from facevox.registry import create_loss

TYPES = ["additive", "additive_angular", "multiplicative"]
NO_MARGIN = {"additive": 0.0, "additive_angular": 0.0, "multiplicative": 1.0}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: extra threads only spin


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _g(z: float, t: float) -> float:
    return 2.0 * ((z + 1.0) / 2.0) ** t - 1.0


def _set_basis(loss_fn, n: int) -> None:
    with torch.no_grad():
        loss_fn.weight.copy_(torch.eye(n, loss_fn.embed_dim))


# ---------------------------------------------------------------- SphereFace2


@pytest.mark.parametrize("margin_type", TYPES)
def test_sphereface2_by_hand(margin_type):
    s, m, lam, t, b = 3.0, {"additive": 0.2, "additive_angular": 0.3, "multiplicative": 1.5}[margin_type], 0.7, 3, 0.4
    loss_fn = SphereFace2(2, 3, scale=s, margin=m, lam=lam, t=t, margin_type=margin_type)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        loss_fn.bias.fill_(b)
    angles, labels = [0.5, 2.0], [0, 1]
    emb = torch.tensor([[math.cos(a), math.sin(a)] for a in angles])
    want = 0.0
    for a, y in zip(angles, labels, strict=True):
        thetas = [a, abs(math.pi / 2 - a), math.pi - a]  # angles to the three class weights
        if margin_type == "additive":
            g_pos = _g(math.cos(thetas[y]), t) - m
        else:
            phi = thetas[y] + m if margin_type == "additive_angular" else thetas[y] * m
            g_pos = _g(math.cos(min(math.pi, phi)), t)
        neg_m = m if margin_type == "additive" else 0.0
        negs = sum(_softplus(s * (_g(math.cos(th), t) + neg_m) + b) for j, th in enumerate(thetas) if j != y)
        want += lam * _softplus(-(s * g_pos + b)) + (1 - lam) * negs
    got = loss_fn(emb, torch.tensor(labels)).item()
    assert got == pytest.approx(want / 2, rel=1e-5)


@pytest.mark.parametrize("margin_type", TYPES)
def test_sphereface2_without_margin_and_adjustment_is_one_vs_all_logistic(margin_type):
    torch.manual_seed(0)
    loss_fn = SphereFace2(6, 4, scale=5.0, margin=NO_MARGIN[margin_type], lam=0.6, t=1.0, margin_type=margin_type)
    emb, labels = torch.randn(10, 6), torch.randint(0, 4, (10,))
    logit = 5.0 * loss_fn.cosine(emb) + loss_fn.bias
    target = F.one_hot(labels, 4).float()
    weight = 0.6 * target + 0.4 * (1 - target)
    want = F.binary_cross_entropy_with_logits(logit, target, weight=weight, reduction="sum") / 10
    torch.testing.assert_close(loss_fn(emb, labels), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("margin_type", TYPES)
def test_sphereface2_initial_bias_balances_the_initial_loss(margin_type):
    # with every cosine 0, the initial b is a stationary point of the loss in b
    loss_fn = SphereFace2(6, 5, margin_type=margin_type)
    _set_basis(loss_fn, 5)
    emb = torch.zeros(3, 6)
    emb[:, 5] = 1.0
    loss_fn(emb, torch.tensor([0, 2, 4])).backward()
    assert abs(loss_fn.bias.grad.item()) < 1e-4


@pytest.mark.parametrize("margin_type", TYPES)
@pytest.mark.parametrize("scale", [32.0, 1e4])
def test_sphereface2_finite_at_extremes(margin_type, scale):
    loss_fn = SphereFace2(3, 3, scale=scale, margin_type=margin_type)
    _set_basis(loss_fn, 3)
    # on a class weight (cos = 1), opposite to it (cos = -1), huge norms, a tiny norm
    emb = torch.tensor(
        [[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1e4, 0.0], [-1e4, 0.0, 0.0], [0.0, 0.0, 1e-6], [1e4, 1e4, -1e4]],
        requires_grad=True,
    )
    loss = loss_fn(emb, torch.tensor([0, 0, 1, 0, 1, 2]))
    loss.backward()
    assert torch.isfinite(torch.tensor(loss_fn.bias.item()))
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert torch.isfinite(loss_fn.weight.grad).all() and torch.isfinite(loss_fn.bias.grad).all()


@pytest.mark.parametrize("margin_type", TYPES)
def test_sphereface2_gradcheck(margin_type):
    torch.manual_seed(1)
    loss_fn = SphereFace2(3, 3, scale=4.0, margin_type=margin_type).double()
    emb = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1])
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, labels), (emb,))


@pytest.mark.parametrize("margin_type", TYPES)
def test_sphereface2_margin_attribute_is_read_in_forward(margin_type):
    torch.manual_seed(0)
    loss_fn = create_loss("sphereface2", embed_dim=4, num_classes=3, margin_type=margin_type)
    assert loss_fn.margin > NO_MARGIN[margin_type]
    emb, labels = torch.randn(6, 4), torch.randint(0, 3, (6,))
    with_margin = loss_fn(emb, labels)
    loss_fn.margin = NO_MARGIN[margin_type]
    assert loss_fn(emb, labels) < with_margin


def test_sphereface2_rejects_bad_arguments():
    with pytest.raises(ValueError, match="margin_type"):
        SphereFace2(4, 3, margin_type="C")
    with pytest.raises(ValueError, match="lam"):
        SphereFace2(4, 3, lam=1.0)


# ---------------------------------------------------------------- MP / MMP


def _unit(*v: float) -> torch.Tensor:
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


def _mp_case():
    """4 classes in 3-D; batch: two of class 0, one of class 1 (singleton)."""
    proxies = torch.stack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(0, 0, 1), _unit(1, 1, 1)])
    x = torch.stack([_unit(1, 0.2, 0), _unit(1, -0.1, 0.3), _unit(0.1, 1, 0.2)])
    return proxies, x, torch.tensor([0, 0, 1])


def test_mask_proxy_by_hand():
    proxies, x, labels = _mp_case()
    w, lam, m = 3.0, 0.5, 0.1
    loss_fn = MaskProxy(3, 4, scale=w, margin=m, reg_weight=lam)
    with torch.no_grad():
        loss_fn.weight.copy_(proxies)
    # class 0 is masked (2 samples); anchors 0 and 1 take each other as positive; class 1 keeps p_1
    c0 = F.normalize(x[0] + x[1], dim=0)
    rows = [
        ([x[0] @ x[1], x[0] @ proxies[1], x[0] @ proxies[2], x[0] @ proxies[3]], 0),
        ([x[1] @ x[0], x[1] @ proxies[1], x[1] @ proxies[2], x[1] @ proxies[3]], 0),
        ([x[2] @ c0, x[2] @ proxies[1], x[2] @ proxies[2], x[2] @ proxies[3]], 1),
    ]
    want = 0.0
    for cos, y in rows:
        z = [w * (float(c) - (m if k == y else 0.0)) for k, c in enumerate(cos)]
        want += -z[y] + math.log(sum(math.exp(v) for v in z))
    # only one class is masked: the regulariser is 0
    got = loss_fn(x, labels).item()
    assert got == pytest.approx(want / 3, rel=1e-5)


def test_mmp_by_hand():
    proxies, x, labels = _mp_case()
    # a second masked class (2 samples of class 2) so that every term is used
    x = torch.cat([x, torch.stack([_unit(0, 0.2, 1), _unit(0.3, 0, 1)])])
    labels = torch.tensor([0, 0, 1, 2, 2])
    w, b, lam, m = 3.0, 1.5, 0.5, 0.1
    loss_fn = MultinomialMaskProxy(3, 4, scale=w, bias=b, margin=m, reg_weight=lam)
    with torch.no_grad():
        loss_fn.weight.copy_(proxies)
    c0, c2 = F.normalize(x[0] + x[1], dim=0), F.normalize(x[3] + x[4], dim=0)
    positive = [x[0] @ x[1], x[1] @ x[0], x[2] @ proxies[1], x[3] @ x[4], x[4] @ x[3]]
    # negatives: unmasked classes 1, 3 through their proxies; masked classes 0, 2 through centroids
    proxy_negs = [[1, 3], [1, 3], [3], [1, 3], [1, 3]]
    entity_negs = [[c2], [c2], [c0, c2], [c0], [c0]]
    l1 = math.log1p(sum(math.exp(-(w * (float(c) - m) - b)) for c in positive))
    l2 = sum(math.log1p(sum(math.exp(w * float(x[i] @ proxies[k]) - b) for k in ks)) for i, ks in enumerate(proxy_negs))
    l3 = sum(math.log1p(sum(math.exp(w * float(x[i] @ c) - b) for c in cs)) for i, cs in enumerate(entity_negs))
    reg_logits = [[w * float(c @ proxies[k]) for k in (0, 2)] for c in (c0, c2)]
    reg = sum(-r[i] + math.log(sum(math.exp(v) for v in r)) for i, r in enumerate(reg_logits)) / 2
    want = l1 + l2 / 5 + l3 / 5 + lam * reg
    assert loss_fn(x, labels).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", ["mask_proxy", "mmp"])
def test_mask_proxy_without_repeats_is_its_proxy_only_form(name):
    torch.manual_seed(0)
    loss_fn = create_loss(name, embed_dim=5, num_classes=6, margin=0.1)
    emb, labels = torch.randn(4, 5), torch.tensor([3, 0, 5, 1])
    cos = loss_fn.cosine(emb)
    w = loss_fn.w
    cos_y = cos.gather(1, labels.view(-1, 1)).squeeze(1)
    if name == "mask_proxy":  # CosFace with scale w
        want = F.cross_entropy(w * (cos - 0.1 * F.one_hot(labels, 6)), labels)
    else:
        b = loss_fn.b
        others = F.one_hot(labels, 6) == 0
        neg = torch.stack([torch.log1p(torch.exp(w * cos[i][others[i]] - b).sum()) for i in range(4)]).mean()
        want = torch.log1p(torch.exp(-(w * (cos_y - 0.1) - b)).sum()) + neg
    torch.testing.assert_close(loss_fn(emb, labels), want)


@pytest.mark.parametrize("name", ["mask_proxy", "mmp"])
@pytest.mark.parametrize("labels", [[0, 0, 1, 2], [1, 1, 1], [2], [0, 1, 2, 3], [0, 0, 1, 1, 2, 3]])
def test_mask_proxy_singletons_and_odd_batches_stay_finite(name, labels):
    torch.manual_seed(0)
    loss_fn = create_loss(name, embed_dim=4, num_classes=4)
    emb = torch.randn(len(labels), 4, requires_grad=True)
    loss = loss_fn(emb, torch.tensor(labels))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in loss_fn.parameters() if p.grad is not None)


@pytest.mark.parametrize("cls", [MaskProxy, MultinomialMaskProxy])
def test_mask_proxy_gradcheck(cls):
    torch.manual_seed(2)
    loss_fn = cls(3, 4, margin=0.1).double()
    emb = torch.randn(5, 3, dtype=torch.double, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda e: loss_fn(e, labels), (emb,))


@pytest.mark.parametrize("name", ["mask_proxy", "mmp"])
def test_mask_proxy_margin_attribute_is_read_in_forward(name):
    torch.manual_seed(0)
    loss_fn = create_loss(name, embed_dim=4, num_classes=3)
    emb, labels = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    before = loss_fn(emb, labels)
    loss_fn.margin = 0.3
    assert loss_fn(emb, labels) > before


# ---------------------------------------------------------------- training on a toy problem

TOY_LOSSES = [
    ("softmax", {}),
    ("cosface", {"scale": 16.0, "margin": 0.2}),
    ("arcface", {"scale": 16.0, "margin": 0.2}),
    ("sphereface2", {}),
    ("sphereface2", {"margin_type": "additive_angular"}),
    ("sphereface2", {"margin_type": "multiplicative"}),
    ("mask_proxy", {}),
    ("mmp", {}),
]


def _toy_batch(gen: torch.Generator, centres: torch.Tensor, per_class: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(len(centres)).repeat_interleave(per_class)
    return centres[labels] + 0.7 * torch.randn(len(labels), centres.shape[1], generator=gen), labels


def _separation(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cosine of samples to their class mean minus the largest cosine between class means."""
    x = F.normalize(emb, dim=1)
    means = F.normalize(torch.stack([x[labels == k].mean(0) for k in labels.unique()]), dim=1)
    intra = (x * means[labels]).sum(1).mean()
    between = means @ means.T - 2 * torch.eye(len(means))
    return float(intra - between.max())


@pytest.mark.parametrize(("name", "kwargs"), TOY_LOSSES, ids=[f"{n}-{k.get('margin_type', '')}" for n, k in TOY_LOSSES])
def test_training_separates_four_classes(name, kwargs):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    centres = torch.randn(4, 10, generator=gen)
    embedder = torch.nn.Linear(10, 6)
    loss_fn = create_loss(name, embed_dim=6, num_classes=4, **kwargs)
    opt = torch.optim.Adam([*embedder.parameters(), *loss_fn.parameters()], lr=0.05)
    x_eval, y_eval = _toy_batch(gen, centres, per_class=50)
    with torch.no_grad():
        sep_before, loss_before = _separation(embedder(x_eval), y_eval), loss_fn(embedder(x_eval), y_eval).item()
    for _ in range(50):
        x, y = _toy_batch(gen, centres)
        opt.zero_grad()
        loss_fn(embedder(x), y).backward()
        opt.step()
    with torch.no_grad():
        sep_after, loss_after = _separation(embedder(x_eval), y_eval), loss_fn(embedder(x_eval), y_eval).item()
        accuracy = (loss_fn.logits(embedder(x_eval)).argmax(1) == y_eval).float().mean().item()
    assert loss_after < loss_before and accuracy > 0.95
    assert sep_after > max(sep_before, 0.5), (sep_before, sep_after)


# ---------------------------------------------------------------- pair losses


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_contrastive_by_hand(distance):
    loss_fn = ContrastiveLoss(margin=1.0, distance=distance)
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 2.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    same = torch.tensor([1, 0, 0, 1])
    # after normalisation: angles 90, 90, 90 and 45 degrees
    if distance == "euclidean":
        d = [math.sqrt(2)] * 3 + [math.sqrt(2 - math.sqrt(2))]
    else:
        d = [1.0] * 3 + [1 - math.sqrt(0.5)]
    terms = [d[0] ** 2, max(0, 1 - d[1]) ** 2, max(0, 1 - d[2]) ** 2, d[3] ** 2]
    assert loss_fn(a, b, same).item() == pytest.approx(0.5 * sum(terms) / 4, rel=1e-5)
    # a different pair inside the margin costs (margin - d)^2 / 2
    close = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.5]])
    d_close = math.sqrt(2 - 2 / math.sqrt(1.25)) if distance == "euclidean" else 1 - 1 / math.sqrt(1.25)
    assert loss_fn(*close, torch.tensor([0])).item() == pytest.approx(0.5 * (1 - d_close) ** 2, rel=1e-5)


def test_contrastive_unnormalised_euclidean():
    loss_fn = ContrastiveLoss(margin=2.0, normalize=False)
    a, b = torch.tensor([[0.0, 0.0], [0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert loss_fn(a, b, torch.tensor([1, 0])).item() == pytest.approx(0.5 * (25 + 1) / 2, rel=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_contrastive_gradient_pulls_same_and_pushes_different(distance):
    loss_fn = ContrastiveLoss(margin=1.5, distance=distance)
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    b = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    loss_fn(a, b, torch.tensor([1.0, 0.0])).backward()
    step = a.detach() - 0.1 * a.grad
    cos = F.cosine_similarity(step, b)
    assert cos[0] > math.sqrt(0.5) > cos[1]


def test_contrastive_identical_embeddings_have_finite_gradients():
    a = torch.ones(2, 3, requires_grad=True)
    loss = ContrastiveLoss()(a, torch.ones(2, 3), torch.tensor([0, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(0.25, rel=1e-5) and torch.isfinite(a.grad).all()


def test_contrastive_margin_attribute_is_read_in_forward():
    loss_fn = create_loss("contrastive", margin=0.5)
    a, b, same = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([0])
    before = loss_fn(a, b, same)
    loss_fn.margin = 1.5
    assert loss_fn(a, b, same) > before


@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_pair_bce_is_bce_with_logits(pos_weight):
    torch.manual_seed(0)
    logit, same = 3 * torch.randn(12), torch.randint(0, 2, (12,))
    loss_fn = create_loss("pair_bce", pos_weight=pos_weight)
    want = F.binary_cross_entropy_with_logits(
        logit, same.float(), pos_weight=None if pos_weight is None else torch.tensor(pos_weight)
    )
    torch.testing.assert_close(loss_fn(logit, same), want)
    assert isinstance(loss_fn, PairBCE) and PairBCE.pair_loss and ContrastiveLoss.pair_loss


def test_pair_losses_run_in_fp32_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c = create_loss("contrastive")(torch.randn(4, 3).bfloat16(), torch.randn(4, 3).bfloat16(), torch.ones(4))
        p = create_loss("pair_bce")(torch.randn(4).bfloat16(), torch.ones(4))
    assert c.dtype == torch.float32 and p.dtype == torch.float32
