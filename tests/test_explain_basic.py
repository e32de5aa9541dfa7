"""Saliency known answers."""

from __future__ import annotations

import torch

from facevox.explain import class_score, create_explainer, embedding_similarity


def test_linear_model_gradient_is_its_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(2, 3, 4, 4)
    with create_explainer("gradient", model=model) as explainer:
        raw = explainer.attribute(x, class_score(1), reduce=False)
        maps = explainer.attribute(x, class_score(1))
    want = model[1].weight[1].reshape(3, 4, 4)
    torch.testing.assert_close(raw, want.expand(2, 3, 4, 4))
    torch.testing.assert_close(maps, want.abs().amax(0).expand(2, 4, 4))


def test_input_x_gradient_sums_to_linear_score():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1, bias=False))
    x = torch.randn(3, 3, 2, 2)
    with create_explainer("input_x_gradient", model=model) as explainer:
        attr = explainer.attribute(x, class_score(0), reduce=False)
    torch.testing.assert_close(attr.flatten(1).sum(1), model(x)[:, 0].detach())


def test_embedding_similarity_target():
    model = torch.nn.Flatten()
    x = torch.randn(2, 1, 2, 2)
    score = embedding_similarity(x[0].flatten())(model(x))
    assert score[0].item() == torch.tensor(1.0).item() and score.shape == (2,)
