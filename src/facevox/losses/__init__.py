"""Classification losses for embedding learning, one small file per paper.

All share one interface (see :class:`facevox.losses.base.EmbeddingLoss`)::

    loss_fn = create_loss("arcface", embed_dim=192, num_classes=251, scale=32.0, margin=0.2)
    loss = loss_fn(emb, labels)        # emb (B, D) float, labels (B,) int64
    loss_fn.margin = 0.1               # margins are plain attributes
    hook = loss_fn.step_hook(500)      # a Trainer step hook: margin warm-up over 500 steps, plus any
                                       # annealing the loss does (SphereFace's lambda); see losses.schedule

Arguments are checked when a loss is built (:mod:`facevox.losses.settings`); tasks build theirs with
``build_loss``, which reports a bad or unknown argument at its config key (``loss.kwargs.scale``).
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
