"""SphereFace2: one-vs-all binary classification on the hypersphere, no softmax over classes.

Wen, Liu, Weller, Raj, Singh, "SphereFace2: Binary Classification is All You Need for Deep Face
Recognition", ICLR 2022 (arXiv:2108.01513, the seed text); used for speaker verification by Han,
Chen, Qian, "Exploring Binary Classification Loss for Speaker Verification", ICASSP 2023.

Each class j is its own binary task "is x of class j?" scored by s cos(theta_j) + b. With the
similarity adjustment g(z) = 2 ((z + 1) / 2)^t - 1 (t = 1: no adjustment) and the positive
weight lambda balancing 1 positive against C - 1 negatives, the loss of a sample of class y is

    L = lambda log(1 + exp(-(s g~_y + b))) + (1 - lambda) sum_{j != y} log(1 + exp(s g~_j + b))

averaged over the batch (every log(1 + exp(.)) is ``F.softplus``), where the margin enters g~:

    "additive" (SphereFace2-C):          g~_y = g(cos theta_y) - m,            g~_j = g(cos theta_j) + m
    "additive_angular" (SphereFace2-A):  g~_y = g(cos(min(pi, theta_y + m))),  g~_j = g(cos theta_j)
    "multiplicative" (SphereFace2-M):    g~_y = g(cos(min(pi, m theta_y))),    g~_j = g(cos theta_j)

The A and M forms put the margin on the positive only, and clamp the angle to [0, pi], as the
authors' code (OpenSphere) does; past pi - m (A) or pi / m (M) the positive term is flat. WeSpeaker's
speaker version of A also moves the negatives to cos(theta_j - m); this one does not.

Choices, since the seed text is the abstract alone and gives no equations or numbers:

* Speaker defaults s = 32, lambda = 0.7, t = 3, and m = 0.2 (C) / 0.15 (A), the values WeSpeaker's
  SphereFace2 recipe uses (it recommends 0.2 for C and 0.15 for A). M has no published speaker value;
  m = 1.2 (ours) adds about as much angle as A's 0.15 near theta = pi / 4. For M, m = 1 is no margin.
* The bias b is a learnable scalar initialised as in OpenSphere: the minimiser of the initial loss
  when every cos theta is 0 (what random high-dimensional embeddings give), solved in closed form.
  WeSpeaker starts it at 0.
* The loss is summed over classes and averaged over the batch, without the paper's 1 / s factor or
  OpenSphere's loss weight (it multiplies by lw / s = 50 / 40): a constant factor, i.e. a learning rate.
* Exact gradients. OpenSphere detaches g~ - cos ("characteristic gradient detachment") so that
  gradients flow as through s cos theta + b; here they flow through g~ itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import LossSettingError, choice, number
from facevox.registry import register_loss

MARGIN_TYPES = ("additive", "additive_angular", "multiplicative")
DEFAULT_MARGINS = {"additive": 0.2, "additive_angular": 0.15, "multiplicative": 1.2}
_ACOS_EPS = 1e-6  # cos is clamped into [-1 + eps, 1 - eps] before acos (whose slope is infinite at +-1)


def similarity_adjustment(z: torch.Tensor, t: float) -> torch.Tensor:
    """g(z) = 2 ((z + 1) / 2)^t - 1, z clamped into [-1, 1] (rounding can step outside)."""
    return 2.0 * ((z.clamp(-1.0, 1.0) + 1.0) / 2.0).pow(t) - 1.0


def _logaddexp(x: float, y: float) -> float:
    hi, lo = max(x, y), min(x, y)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))


def initial_bias(num_classes: int, *, scale: float, margin: float, lam: float, t: float, margin_type: str) -> float:
    """b minimising the loss of a sample whose cosines to all class weights are 0.

    With a_y = s g~_y and a_n = s g~_j at cos = 0 and z = lambda / ((1 - lambda)(C - 1)), setting
    d/db [lambda softplus(-(a_y + b)) + (1 - lambda)(C - 1) softplus(a_n + b)] = 0 gives a quadratic
    in v = exp(a_n + b): exp(a_y - a_n) v^2 + (1 - z) v - z = 0 (OpenSphere's closed form). Its
    positive root is taken in log space, so huge scales neither overflow nor cancel.
    """
    g0 = 2.0 * 0.5**t - 1.0
    if margin_type == "additive":
        a_y, a_n = scale * (g0 - margin), scale * (g0 + margin)
    else:
        phi = math.pi / 2 + margin if margin_type == "additive_angular" else margin * math.pi / 2
        phi = min(math.pi, max(0.0, phi))
        a_y, a_n = scale * (2.0 * ((math.cos(phi) + 1.0) / 2.0) ** t - 1.0), scale * g0
    z = lam / ((1.0 - lam) * (num_classes - 1))
    e = a_y - a_n
    log_a = math.log(abs(1.0 - z)) if z != 1.0 else -math.inf
    log_sqrt = 0.5 * _logaddexp(2.0 * log_a, math.log(4.0 * z) + e)  # log sqrt((1 - z)^2 + 4 z e^e)
    if z <= 1.0:
        log_v = math.log(2.0 * z) - _logaddexp(log_a, log_sqrt)
    else:
        log_v = _logaddexp(log_a, log_sqrt) - math.log(2.0) - e
    return log_v - a_n


class SphereFace2(EmbeddingLoss):
    """Scale ``s`` (``scale``), margin ``m`` (``margin``), positive weight ``lambda`` (``lam``),
    adjustment exponent ``t``, learnable bias ``b`` (``self.bias``); ``margin_type`` picks C, A or M.

    ``margin=None`` takes the speaker default of the margin type (see the module docstring).
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        scale: float = 32.0,
        margin: float | None = None,
        lam: float = 0.7,
        t: float = 3.0,
        margin_type: str = "additive",
    ) -> None:
        super().__init__(embed_dim, num_classes)
        self.margin_type = choice("margin_type", margin_type, MARGIN_TYPES)
        self.scale = number("scale", scale, gt=0)
        self.lam = number("lam", lam, gt=0, lt=1)
        self.t = number("t", t)
        if self.t < 1.0:
            raise LossSettingError("t", f"must be >= 1 (g'(z) is infinite at z = -1 below that), got {self.t:g}")
        if margin is None:
            self.margin = DEFAULT_MARGINS[margin_type]
        elif margin_type == "multiplicative":
            self.margin = number("margin", margin, ge=1)  # 1 is no margin
        else:
            self.margin = number("margin", margin, ge=0, lt=2 if margin_type == "additive" else math.pi)
        # the margin that means "none", where a warm-up starts: theta * 1 for the multiplicative type
        self.neutral_margin = 1.0 if margin_type == "multiplicative" else 0.0
        b = initial_bias(num_classes, scale=self.scale, margin=self.margin, lam=self.lam, t=self.t,
                         margin_type=margin_type)
        self.bias = nn.Parameter(torch.tensor(b))

    def _positive(self, cos_y: torch.Tensor) -> torch.Tensor:
        """g~_y: the margin-adjusted similarity of each sample to its own class."""
        m = float(self.margin)
        if self.margin_type == "additive":
            return similarity_adjustment(cos_y, self.t) - m
        theta = torch.acos(cos_y.clamp(-1.0 + _ACOS_EPS, 1.0 - _ACOS_EPS))
        phi = theta + m if self.margin_type == "additive_angular" else theta * m
        return similarity_adjustment(torch.cos(phi.clamp(0.0, math.pi)), self.t)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(emb)
        b = self.bias.to(cos.dtype)
        neg_margin = float(self.margin) if self.margin_type == "additive" else 0.0
        neg = F.softplus(self.scale * (similarity_adjustment(cos, self.t) + neg_margin) + b)
        pos = F.softplus(-(self.scale * self._positive(cos.gather(1, labels.view(-1, 1)).squeeze(1)) + b))
        neg_sum = replace_target(neg, labels, torch.zeros_like(pos)).sum(1)
        return (self.lam * pos + (1.0 - self.lam) * neg_sum).mean()


@register_loss("sphereface2")
def sphereface2(
    *,
    embed_dim: int,
    num_classes: int,
    scale: float = 32.0,
    margin: float | None = None,
    lam: float = 0.7,
    t: float = 3.0,
    margin_type: str = "additive",
) -> SphereFace2:
    """SphereFace2 (one-vs-all binary losses): speaker defaults s=32, m=0.2 (C), lambda=0.7, t=3."""
    return SphereFace2(embed_dim, num_classes, scale=scale, margin=margin, lam=lam, t=t, margin_type=margin_type)
