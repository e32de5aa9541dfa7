"""Classification losses for embedding learning, one small file per paper.

All share one interface (see :class:`facevox.losses.base.EmbeddingLoss`)::

    loss_fn = create_loss("arcface", embed_dim=192, num_classes=251, scale=32.0, margin=0.2)
    loss = loss_fn(emb, labels)        # emb (B, D) float, labels (B,) int64
    loss_fn.margin = 0.1               # margins are plain attributes: warm-up just sets them
"""

from facevox.losses import (  # noqa: F401
    arcface,
    cosface,
    mask_proxy,
    normface,
    pair,
    softmax,
    sphereface,
    sphereface2,
    sphereface_r,
)
