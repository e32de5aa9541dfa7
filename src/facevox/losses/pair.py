"""Losses on pairs, for Siamese verification networks: contrastive loss and pair BCE.

These are not :class:`~facevox.losses.base.EmbeddingLoss` heads (no classes, no weights): they take
pairs. They are registered as losses too, built without ``embed_dim``/``num_classes``; their class
attribute ``pair_loss = True`` tells generic code so. Both compute in fp32 even under autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facevox.losses.schedule import MarginSchedule
from facevox.losses.settings import choice, flag, number
from facevox.registry import register_loss

DISTANCES = ("euclidean", "cosine")


@register_loss("contrastive")
class ContrastiveLoss(MarginSchedule, nn.Module):
    """Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006, eq. 4) on embedding pairs.

    ``forward(emb_a (B, D), emb_b (B, D), same (B,) 0/1) -> scalar``:

        L = mean_i [ 1/2 same_i d_i^2 + 1/2 (1 - same_i) max(0, margin - d_i)^2 ]

    with the paper's factor 1/2 on both terms (so dL/dd = d for a same pair), and the paper's
    Y = 0 for similar pairs written as ``same = 1``. ``distance`` is ``"euclidean"``
    (d = ||a - b||) or ``"cosine"`` (d = 1 - cos(a, b)); both lie in [0, 2] on the unit sphere, and
    ``margin`` (a plain attribute, so it can be warmed up) is in those units: 1.0 is cos = 0.5 for
    euclidean, cos = 0 for cosine.

    With ``normalize=True`` (the default) the embeddings are L2-normalised first. Unnormalised, the
    loss is not scale-invariant: the same-pair term is cut by shrinking every embedding towards 0
    (collapse, until the different-pair hinge stops it at the scale of ``margin``), and nothing
    bounds the norms of different pairs once they clear the margin, so the network trades direction
    for norm and the norms drift or explode. On the unit sphere only directions can move, the margin
    has a fixed meaning, and the distances match the cosine scoring used for verification.
    """

    pair_loss = True

    def __init__(self, *, margin: float = 1.0, distance: str = "euclidean", normalize: bool = True) -> None:
        super().__init__()
        self.distance = choice("distance", distance, DISTANCES)
        self.margin = number("margin", margin, ge=0)
        self.normalize = flag("normalize", normalize)

    def distances(self, emb_a: torch.Tensor, emb_b: torch.Tensor) -> torch.Tensor:
        """d_i between the two sides of each pair: (B,)."""
        if self.distance == "cosine":
            return 1.0 - (F.normalize(emb_a, dim=1) * F.normalize(emb_b, dim=1)).sum(1)
        if self.normalize:
            emb_a, emb_b = F.normalize(emb_a, dim=1), F.normalize(emb_b, dim=1)
        # the epsilon keeps sqrt's slope finite for identical embeddings
        return torch.sqrt((emb_a - emb_b).pow(2).sum(1) + 1e-12)

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=emb_a.device.type, enabled=False):
            dtype = emb_a.dtype if emb_a.dtype == torch.float64 else torch.float32
            d = self.distances(emb_a.to(dtype), emb_b.to(dtype))
            y = same.to(dtype).reshape(-1)
            return 0.5 * (y * d.pow(2) + (1.0 - y) * F.relu(float(self.margin) - d).pow(2)).mean()


@register_loss("pair_bce")
class PairBCE(nn.Module):
    """Binary cross-entropy with logits for a pair classifier ("same identity?").

    ``forward(logit (B,), same (B,) 0/1) -> scalar``: ``F.binary_cross_entropy_with_logits``,
    averaged; ``pos_weight`` (optional) multiplies the loss of the same pairs, e.g. #different /
    #same to balance a set of pairs where different ones dominate.
    """

    pair_loss = True

    def __init__(self, *, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = None if pos_weight is None else number("pos_weight", pos_weight, gt=0)

    def forward(self, logit: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logit.device.type, enabled=False):
            dtype = logit.dtype if logit.dtype == torch.float64 else torch.float32
            pos_weight = None
            if self.pos_weight is not None:
                pos_weight = torch.tensor(self.pos_weight, dtype=dtype, device=logit.device)
            return F.binary_cross_entropy_with_logits(
                logit.to(dtype).reshape(-1), same.to(dtype).reshape(-1), pos_weight=pos_weight
            )
