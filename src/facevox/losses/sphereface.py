"""SphereFace / A-Softmax: a multiplicative angular margin on unnormalised features.

Liu, Wen, Yu, Li, Raj, Song, "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017.
Class weights are normalised (||W_j|| = 1, no bias), features x are not: the logit of class j is
||x|| cos(theta_j), and the target's angle theta_y is multiplied by an integer margin m (m = 4 in the
paper; m = 1 is no margin) through

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi / m, (k + 1) pi / m],  k = 0 .. m - 1,

which equals cos(m theta) on [0, pi / m] and continues it so that psi decreases monotonically over
[0, pi] (from 1 to 1 - 2m). The A-Softmax loss is CE over the logits ||x|| psi(theta_y) (target) and
||x|| cos(theta_j) (the others).

Training it from scratch only works with the paper's annealing (its code, the Caffe
``MarginInnerProduct`` layer): the target logit is a blend of the plain and the margin logit,

    f_y = (lambda ||x|| cos(theta_y) + ||x|| psi(theta_y)) / (1 + lambda),

the other logits unchanged, with lambda decaying with the training step,

    lambda(step) = max(lambda_min, base (1 + gamma step)^(-power)),

and the values of the released SphereFace prototxt: base = 1000, gamma = 0.12, power = 1,
lambda_min = 5 (lambda reaches its floor after about 1,660 steps; training ends with
f_y = (5 cos + psi) / 6, never the pure A-Softmax). Caffe counts from step 1; here step 0 gives base.

How it is computed:

* cos(m theta) for integer m is the Chebyshev polynomial T_m(cos theta) (as in the Caffe layer), a
  polynomial with finite slope everywhere, including cos theta = +-1 (where acos' slope is
  infinite); k is counted from thresholds, k = #{j = 1 .. m - 1 : cos theta <= cos(j pi / m)}, so it
  needs no angle either. A non-integer m (the paper has none, but a margin warm-up passes through
  them) takes cos(m acos(c)) with c clamped into [-1 + 1e-6, 1 - 1e-6] before acos.
* Exact gradients (autograd). The Caffe layer's backward rescales the two parts of the target's
  gradient to unit length; this one does not.

Use: the step hook ``loss.step_hook(warmup_steps)`` (what every task's trainer runs before each step)
sets ``lamb`` from the step with ``loss.anneal(step)``, and warms up the margin if asked; or set
``loss.lamb`` directly; ``lamb = 0`` is the plain A-Softmax. ``margin`` is a plain attribute (1 = no margin).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import LossSettingError, number
from facevox.registry import register_loss

_ACOS_EPS = 1e-6  # acos' slope is taken at cos clamped into [-1 + eps, 1 - eps] (it is infinite at +-1)


def sphereface_lambda(
    step: int, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0
) -> float:
    """SphereFace's annealing weight lambda = max(lambda_min, base (1 + gamma step)^(-power))."""
    return max(lambda_min, base * (1.0 + gamma * step) ** (-power))


def safe_acos(cos: torch.Tensor) -> torch.Tensor:
    """theta = acos(cos) with the exact value on [-1, 1] (cos clamped there) and a finite slope: that of
    acos at cos clamped into [-1 + eps, 1 - eps], 0 outside (no infinite slope, no NaN at +-1)."""
    inner = torch.acos(cos.clamp(-1.0 + _ACOS_EPS, 1.0 - _ACOS_EPS))
    return inner + (torch.acos(cos.detach().clamp(-1.0, 1.0)) - inner.detach())


def _chebyshev(c: torch.Tensor, n: int) -> torch.Tensor:
    """T_n(c) = cos(n acos c) for integer n >= 0, by T_{i+1} = 2 c T_i - T_{i-1}."""
    prev, cur = torch.ones_like(c), c
    if n == 0:
        return prev
    for _ in range(n - 1):
        prev, cur = cur, 2.0 * c * cur - prev
    return cur


def sphereface_psi(cos: torch.Tensor, m: float) -> torch.Tensor:
    """psi(theta) = (-1)^k cos(m theta) - 2k from cos(theta) (any shape), for a margin m >= 1.

    Equals cos(m theta) for theta <= pi / m and decreases monotonically over [0, pi].
    """
    m = float(m)
    if m < 1.0:
        raise ValueError(f"the multiplicative margin must be >= 1, got {m}")
    c = cos.clamp(-1.0, 1.0)  # rounding can step outside
    # k = the number of interval starts j pi / m (0 < j pi / m < pi) that theta has passed
    k = torch.zeros_like(c)
    for j in range(1, math.ceil(m)):
        k = k + (c <= math.cos(j * math.pi / m)).to(c.dtype)
    cos_m = _chebyshev(c, int(m)) if m.is_integer() else torch.cos(m * safe_acos(c))
    sign = 1.0 - 2.0 * torch.remainder(k, 2.0)  # (-1)^k
    return sign * cos_m - 2.0 * k


class SphereFace(EmbeddingLoss):
    """Multiplicative margin ``m`` (``margin``), annealing weight ``lambda`` (``lamb``) and its schedule
    (``base``, ``gamma``, ``power``, ``lambda_min``); features unnormalised, weights normalised."""

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        margin: float = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
    ) -> None:
        super().__init__(embed_dim, num_classes)
        self.margin = number("margin", margin, ge=1)  # 1 is no margin
        self.neutral_margin = 1.0  # m = 1 is no margin: where a warm-up starts
        self.lambda_min = number("lambda_min", lambda_min, ge=0)
        self.base = number("base", base)
        if self.base < self.lambda_min:
            raise LossSettingError("base", f"must be >= lambda_min ({self.lambda_min:g}), got {self.base:g}")
        self.gamma, self.power = number("gamma", gamma, ge=0), number("power", power, ge=0)
        self.lamb = sphereface_lambda(0, self.base, self.gamma, self.power, self.lambda_min)

    def anneal(self, step: int) -> None:
        """Set ``lamb`` to the annealing schedule's value at ``step``."""
        self.lamb = sphereface_lambda(step, self.base, self.gamma, self.power, self.lambda_min)

    def schedule(self, step: int, *, target_margin: float, warmup_steps: int) -> None:
        """The margin warm-up of every margin loss, and lambda annealed with the step (``anneal``)."""
        super().schedule(step, target_margin=target_margin, warmup_steps=warmup_steps)
        self.anneal(step)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """||x|| cos(theta_j) = x . W_j / ||W_j||: (B, C)."""
        return F.linear(emb, F.normalize(self.weight.to(emb.dtype), dim=1))

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(emb, dim=1, keepdim=True)  # ||x||: (B, 1)
        cos = self.cosine(emb)
        cos_y = cos.gather(1, labels.view(-1, 1)).squeeze(1)
        lam = float(self.lamb)
        target = (lam * cos_y + sphereface_psi(cos_y, self.margin)) / (1.0 + lam)
        return F.cross_entropy(norm * replace_target(cos, labels, target), labels)


@register_loss("sphereface")
def sphereface(
    *,
    embed_dim: int,
    num_classes: int,
    margin: float = 4,
    base: float = 1000.0,
    gamma: float = 0.12,
    power: float = 1.0,
    lambda_min: float = 5.0,
) -> SphereFace:
    """SphereFace (A-Softmax): ||x|| psi(theta_y), m = 4, annealed as the original (base 1000, floor 5)."""
    return SphereFace(embed_dim, num_classes, margin=margin, base=base, gamma=gamma, power=power, lambda_min=lambda_min)
