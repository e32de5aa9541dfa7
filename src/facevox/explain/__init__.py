"""Saliency methods behind one call.

    with create_explainer("gradient", model=model) as explainer:
        maps = explainer.attribute(images, target=class_score(1))   # (B, H, W)

"What to explain" is a small callable from the model output to one score per input
(:func:`class_score`, :func:`embedding_similarity`). Methods that hook the model release their
hooks when the ``with`` block ends.
"""

from facevox.explain import captum_methods, gradcam, gradient  # noqa: F401
from facevox.explain.base import Explainer, class_score, create_explainer, embedding_similarity

__all__ = ["Explainer", "class_score", "create_explainer", "embedding_similarity"]
