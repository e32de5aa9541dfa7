"""Mask Proxy (MP) and Multinomial Mask Proxy (MMP) losses for speaker verification.

Lian, Vinod Kumar, Dhamyal, Raj, Singh, "Masked Proxy Loss for Text-Independent Speaker
Verification", Interspeech 2021 (arXiv:2011.04491, the seed text). Every class has a proxy p_k
(``self.weight``). Within a mini-batch, the proxies of the classes present are *masked*: replaced by
the centroid of that class's embeddings in the batch (its "entities"), so one loss sees both
entity-to-entity and entity-to-proxy relations. MMP then scores positives and negatives in
separate log-sum-exp terms, so the hardest pairs dominate (the "hardness of entity pairs").

The seed text is the abstract alone; the formulas below follow the authors' code
(github.com/jlian2/Masked-Proxy-Loss-for-Text-Indepedent-Speaker-Verification, ``loss/mp*.py``,
``loss/mmp*.py``), generalised from its fixed "N speakers x M utterances, utterance 0 is the query"
batches to any labelled batch. With x^_i the L2-normalised embeddings and n_k the number of
samples of class k in the batch, class k is masked (k in M) when n_k >= 2, and

    c_k         = normalise(sum_{i: y_i = k} x^_i)                  the entity centroid of k in M
    c_k^(-i)    = normalise(sum_{j != i: y_j = k} x^_j)             leave-one-out, for anchor i's own class
    q_ik        = c_{y_i}^(-i) if k = y_i in M;  c_k if k in M, k != y_i;  p_k if k not in M
    cos_ik      = x^_i . q_ik                                        anchor i against the masked proxies

so every sample is an anchor (the authors use one query per speaker). An anchor whose class has no
other sample in the batch keeps its proxy p_{y_i} as positive: with no repeated class the loss is its
proxy-only form. Batches need >= 2 samples per class for any entity term (class-balanced sampling,
e.g. 2 utterances per speaker as in the paper); singletons are handled, never NaN.

MP (softmax over the masked proxies; w is a learnable scale, the authors' S = w cos + b, whose bias
cancels in a softmax, so it is left out):

    L_MP = (1/B) sum_i -log( e^{w (cos_{i y_i} - m)} / (e^{w (cos_{i y_i} - m)} + sum_{k != y_i} e^{w cos_ik}) )

MMP (learnable w and b; b / w is the similarity threshold between positives and negatives):

    L_MMP = log(1 + sum_i e^{-(w (cos_{i y_i} - m) - b)})                        all positives of the batch
          + (1/B) sum_i log(1 + sum_{k not in M, k != y_i} e^{w cos_ik - b})     negatives: proxies
          + (1/B) sum_i log(1 + sum_{k in M, k != y_i} e^{w cos_ik - b})         negatives: entity centroids

Both add lambda L_reg, the authors' regulariser that keeps the masked proxies near their entities
(otherwise a class's proxy gets no pull while it is masked): a softmax of each centroid c_k over the
proxies of the masked classes, L_reg = (1/|M|) sum_{k in M} -log softmax_{k' in M}(w c_k . p_k')_k
(0 when fewer than 2 classes are masked). The authors use no margin; m (default 0) is an additive
cosine margin on the positives, a plain attribute for warm-up. Defaults from the authors' code:
w starts at 10, MMP's b at 5, lambda = 0.5. All log(1 + sum e^z) are log-sum-exps with a 0 logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.losses.base import EmbeddingLoss, replace_target
from facevox.losses.settings import number
from facevox.registry import register_loss


def _log1p_sum_exp(z: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """log(1 + sum_{mask} e^z) along ``dim``; 0 where the mask is empty (finite gradients there too)."""
    z = z.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(torch.cat([torch.zeros_like(z.narrow(dim, 0, 1)), z], dim=dim), dim=dim)


class _MaskedProxyLoss(EmbeddingLoss):
    """The masked-proxy cosines and the proxy regulariser shared by MP and MMP."""

    def __init__(self, embed_dim: int, num_classes: int, *, scale: float, margin: float, reg_weight: float) -> None:
        super().__init__(embed_dim, num_classes)
        self.w = nn.Parameter(torch.tensor(number("scale", scale, gt=0)))
        self.margin = number("margin", margin, ge=0)
        self.reg_weight = number("reg_weight", reg_weight, ge=0)

    def masked_cosines(
        self, emb: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """cos_ik (B, C) against the masked proxies, the mask M (C,), centroids (C, D), proxies (C, D)."""
        x = F.normalize(emb, dim=1)
        proxies = F.normalize(self.weight.to(emb.dtype), dim=1)
        one_hot = F.one_hot(labels, self.num_classes).to(x.dtype)
        masked = one_hot.sum(0) >= 2
        sums = one_hot.T @ x
        centroids = F.normalize(sums, dim=1)
        cos = x @ torch.where(masked[:, None], centroids, proxies).T
        own_masked = masked[labels]
        # a singleton's leave-one-out sum is 0: normalise gives 0, where() discards it
        loo = F.normalize(sums[labels] - x, dim=1)
        cos_own = torch.where(own_masked, (x * loo).sum(1), cos.gather(1, labels.view(-1, 1)).squeeze(1))
        return replace_target(cos, labels, cos_own), masked, centroids, proxies

    def regulariser(self, masked: torch.Tensor, centroids: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        """L_reg: each masked class's centroid classified among the masked classes' proxies."""
        idx = masked.nonzero().squeeze(1)
        if idx.numel() < 2:
            return centroids.new_zeros(())
        logits = self.w.clamp_min(1e-6) * centroids[idx] @ proxies[idx].T
        return F.cross_entropy(logits, torch.arange(idx.numel(), device=idx.device))


class MaskProxy(_MaskedProxyLoss):
    """MP: learnable scale ``w`` (starts at ``scale``), positive margin ``m`` (``margin``), lambda
    (``reg_weight``) on the proxy regulariser."""

    def __init__(
        self, embed_dim: int, num_classes: int, *, scale: float = 10.0, margin: float = 0.0, reg_weight: float = 0.5
    ) -> None:
        super().__init__(embed_dim, num_classes, scale=scale, margin=margin, reg_weight=reg_weight)

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos, masked, centroids, proxies = self.masked_cosines(emb, labels)
        w = self.w.clamp_min(1e-6)
        target = cos.gather(1, labels.view(-1, 1)).squeeze(1) - float(self.margin)
        loss = F.cross_entropy(w * replace_target(cos, labels, target), labels)
        return loss + self.reg_weight * self.regulariser(masked, centroids, proxies)


class MultinomialMaskProxy(_MaskedProxyLoss):
    """MMP: learnable scale ``w`` (starts at ``scale``) and threshold bias ``b`` (starts at ``bias``),
    positive margin ``m`` (``margin``), lambda (``reg_weight``) on the proxy regulariser."""

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        *,
        scale: float = 10.0,
        bias: float = 5.0,
        margin: float = 0.0,
        reg_weight: float = 0.5,
    ) -> None:
        super().__init__(embed_dim, num_classes, scale=scale, margin=margin, reg_weight=reg_weight)
        self.b = nn.Parameter(torch.tensor(number("bias", bias)))

    def loss(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos, masked, centroids, proxies = self.masked_cosines(emb, labels)
        w, b = self.w.clamp_min(1e-6), self.b.to(cos.dtype)
        pos = w * (cos.gather(1, labels.view(-1, 1)).squeeze(1) - float(self.margin)) - b
        positives = _log1p_sum_exp(-pos, torch.ones_like(pos, dtype=torch.bool), dim=0)
        other = F.one_hot(labels, self.num_classes) == 0
        neg = w * cos - b
        to_proxies = _log1p_sum_exp(neg, other & ~masked[None, :], dim=1).mean()
        to_entities = _log1p_sum_exp(neg, other & masked[None, :], dim=1).mean()
        reg = self.regulariser(masked, centroids, proxies)
        return positives + to_proxies + to_entities + self.reg_weight * reg


@register_loss("mask_proxy")
def mask_proxy(
    *, embed_dim: int, num_classes: int, scale: float = 10.0, margin: float = 0.0, reg_weight: float = 0.5
) -> MaskProxy:
    """Mask Proxy (MP): softmax over proxies, with in-batch classes masked by their entity centroids."""
    return MaskProxy(embed_dim, num_classes, scale=scale, margin=margin, reg_weight=reg_weight)


@register_loss("mmp")
def mmp(
    *,
    embed_dim: int,
    num_classes: int,
    scale: float = 10.0,
    bias: float = 5.0,
    margin: float = 0.0,
    reg_weight: float = 0.5,
) -> MultinomialMaskProxy:
    """Multinomial Mask Proxy (MMP): separate log-sum-exps of positives, proxy and entity negatives."""
    return MultinomialMaskProxy(embed_dim, num_classes, scale=scale, bias=bias, margin=margin, reg_weight=reg_weight)
