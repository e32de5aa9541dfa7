"""Loss schedules through the one loss interface (margin warm-up for every margin loss, SphereFace's lambda
annealing) in every task that trains with a margin loss, and loss arguments checked when the loss is built."""

from __future__ import annotations

import math

import pytest

from facevox.config import load_config
from facevox.errors import FacevoxError
from facevox.losses.schedule import MarginSchedule, check_warmup_epochs, loss_step_hooks
from facevox.losses.settings import LossSettingError, build_loss
from facevox.losses.sphereface import sphereface_lambda
from facevox.registry import LOSSES, create_loss
from facevox.tasks.face import train as face_train
from facevox.tasks.face.config import FaceConfig
from facevox.tasks.speaker import train as speaker_train
from facevox.tasks.speaker.config import SpeakerConfig

PAIR_LOSSES = {"contrastive", "pair_bce"}
EMBEDDING_LOSSES = [n for n in LOSSES.names() if n not in PAIR_LOSSES]
# a margin away from the no-margin value for the losses whose default margin is none (MP / MMP default to 0)
TARGETS = {"mask_proxy": {"margin": 0.1}, "mmp": {"margin": 0.1}}
BATCHES_PER_EPOCH, WARMUP_EPOCHS = 10, 2.5  # warm-up: int(2.5 * 10) = 25 steps


def test_every_registered_loss_is_known_here():
    assert set(LOSSES.names()) == set(EMBEDDING_LOSSES) | PAIR_LOSSES
    assert {"arcface", "aam_softmax", "cosface", "am_softmax", "sphereface", "sphereface_r", "sphereface2",
            "mask_proxy", "mmp", "normface", "softmax"} <= set(EMBEDDING_LOSSES)


def _task_head(task: str, name: str, warmup_epochs: float = WARMUP_EPOCHS, **kwargs):
    """The loss head and step hooks exactly as the speaker / face trainer builds them."""
    overrides = [f"loss.name={name}", f"loss.margin_warmup_epochs={warmup_epochs}"]
    if task == "speaker":
        cfg = load_config(SpeakerConfig, None, overrides)
        cfg.loss.kwargs = {**TARGETS.get(name, {}), **kwargs}
        head = speaker_train._make_loss(cfg, embed_dim=8, num_classes=3)
        hooks = speaker_train._step_hooks(head, cfg, BATCHES_PER_EPOCH, total_steps=100)
    else:
        cfg = load_config(FaceConfig, None, [*overrides, "model.embed_dim=8"])
        cfg.loss.kwargs = {**TARGETS.get(name, {}), **kwargs}
        head = face_train._make_loss(cfg, num_classes=3)
        hooks = face_train._step_hooks(head, cfg, BATCHES_PER_EPOCH, total_steps=100)
    return head, hooks


def _run(hooks, step: int) -> None:
    for hook in hooks:
        hook(step)


@pytest.mark.parametrize("task", ["speaker", "face"])
@pytest.mark.parametrize("name", EMBEDDING_LOSSES)
def test_margin_schedule_reaches_its_target_in_every_task(task, name):
    head, hooks = _task_head(task, name)
    assert isinstance(head, MarginSchedule) and len(hooks) == 1
    target, start = float(head.margin), float(head.neutral_margin)
    assert hooks[0].warmup_steps == 25 and hooks[0].target_margin == target
    _run(hooks, 0)
    assert head.margin == pytest.approx(start)
    _run(hooks, 10)
    assert head.margin == pytest.approx(start + (target - start) * 10 / 25)
    if target != start:  # softmax and NormFace have no margin: nothing to warm up
        assert min(start, target) < head.margin < max(start, target)
    for step in (25, 26, 99):
        _run(hooks, step)
        assert head.margin == pytest.approx(target)
    _run(hooks, 5)  # a pure function of the step: going back (a resumed run) gives the same value again
    assert head.margin == pytest.approx(start + (target - start) * 5 / 25)


@pytest.mark.parametrize("task", ["speaker", "face"])
def test_sphereface_lambda_is_annealed_in_every_task(task):
    head, hooks = _task_head(task, "sphereface", warmup_epochs=0, gamma=2.0, lambda_min=5.0)
    _run(hooks, 0)
    assert head.lamb == 1000.0 and head.margin == 4
    _run(hooks, 10)
    assert head.lamb == pytest.approx(1000.0 / 21.0)  # base (1 + gamma step)^-1, strictly above the floor
    _run(hooks, 200)
    assert head.lamb == 5.0 and head.margin == 4  # the configured floor, the full margin throughout


def test_sphereface_warmup_and_annealing_together():
    head, hooks = _task_head("speaker", "sphereface", warmup_epochs=1.0)
    _run(hooks, 5)
    assert head.margin == pytest.approx(1.0 + 3.0 * 5 / 10) and head.lamb == pytest.approx(sphereface_lambda(5))
    _run(hooks, 2000)
    assert head.margin == 4 and head.lamb == 5.0


def test_face_sphereface_recipe_anneals_as_before():
    """The face recipe's values: lambda = max(5, 1000 / (1 + 2 step)) each step, the margin 4 from step 0."""
    cfg = load_config(FaceConfig, "mobilefacenet_sphereface", ["model.embed_dim=8"])
    head = face_train._make_loss(cfg, num_classes=3)
    hooks = face_train._step_hooks(head, cfg, BATCHES_PER_EPOCH)
    for step in (0, 1, 7, 50, 99, 100, 1000):
        _run(hooks, step)
        assert head.lamb == pytest.approx(max(5.0, 1000.0 / (1.0 + 2.0 * step))) and head.margin == 4


def test_siamese_contrastive_margin_warms_up_and_pair_bce_has_no_schedule(capsys):
    cfg = load_config(SpeakerConfig, None, ["model.kind=siamese", "loss.name=contrastive",
                                            "loss.margin_warmup_epochs=1", "loss.kwargs={margin: 0.8}"])
    head = speaker_train._make_loss(cfg)
    hooks = speaker_train._step_hooks(head, cfg, BATCHES_PER_EPOCH)
    _run(hooks, 0)
    assert head.margin == 0.0
    _run(hooks, 5)
    assert head.margin == pytest.approx(0.4)
    _run(hooks, 10)
    assert head.margin == pytest.approx(0.8)
    cfg = load_config(SpeakerConfig, None, ["model.kind=pair", "loss.name=pair_bce", "loss.margin_warmup_epochs=1"])
    assert speaker_train._step_hooks(speaker_train._make_loss(cfg), cfg, BATCHES_PER_EPOCH) == []
    assert "has no effect" in capsys.readouterr().err


def test_a_warmup_longer_than_training_is_noted(capsys):
    head = create_loss("arcface", embed_dim=4, num_classes=3)
    loss_step_hooks(head, 20, steps_per_epoch=10, total_steps=50)
    assert "never reaches its target" in capsys.readouterr().err


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), "2", True])
def test_negative_or_non_finite_warmup_is_refused(value):
    with pytest.raises(FacevoxError, match="loss.margin_warmup_epochs") as err:
        check_warmup_epochs(value)
    assert "\n" not in str(err.value)
    head = create_loss("arcface", embed_dim=4, num_classes=3)
    with pytest.raises(FacevoxError, match="loss.margin_warmup_epochs"):
        loss_step_hooks(head, value, steps_per_epoch=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        head.step_hook(-1)


@pytest.mark.parametrize("task", ["speaker", "face"])
def test_task_refuses_negative_warmup_before_reading_data(task, tmp_path):
    """The config's range refuses it at load time too; a config built in code is refused by the task."""
    if task == "speaker":
        cfg = load_config(SpeakerConfig, None, [f"data.train={tmp_path / 'nowhere'}"])
        run = lambda: speaker_train.train_speaker(cfg, tmp_path / "run")  # noqa: E731
    else:
        cfg = load_config(FaceConfig, None, [f"data.train={tmp_path / 'nowhere'}", "model.backbone=mobilefacenet",
                                             "model.embed_dim=8", "data.input_size=[32, 32]",
                                             "model.backbone_kwargs={width: 8}"])
        run = lambda: face_train.train_face(cfg, tmp_path / "run")  # noqa: E731
    cfg.loss.margin_warmup_epochs = -1.0
    with pytest.raises(FacevoxError) as err:
        run()
    assert err.value.where == "loss.margin_warmup_epochs" and "must be >= 0" in err.value.problem
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ loss arguments checked when the loss is built


@pytest.mark.parametrize(("name", "kwargs", "key", "words"), [
    ("aam_softmax", {"scale": -30}, "scale", "must be > 0, got -30"),
    ("aam_softmax", {"margin": "nan"}, "margin", "must be a finite number"),
    ("aam_softmax", {"margin": float("nan")}, "margin", "must be a finite number"),
    ("arcface", {"margin": 4.0}, "margin", "must be < 3.14159"),
    ("cosface", {"scale": 0}, "scale", "must be > 0"),
    ("cosface", {"margin": -0.1}, "margin", "must be >= 0"),
    ("am_softmax", {"scale": "big"}, "scale", "must be a number, got 'big'"),
    ("am_softmax", {"scale": True}, "scale", "must be a number"),
    ("normface", {"scale": float("inf")}, "scale", "must be a finite number"),
    ("sphereface", {"margin": 0.5}, "margin", "must be >= 1"),
    ("sphereface", {"lambda_min": 2000.0}, "base", "must be >= lambda_min"),
    ("sphereface", {"gamma": -1}, "gamma", "must be >= 0"),
    ("sphereface_r", {"margin_type": "v9"}, "margin_type", "must be one of v0, v1, v2"),
    ("sphereface_r", {"detach": "yes"}, "detach", "must be true or false"),
    ("sphereface_r", {"norm_weight": -1}, "norm_weight", "must be >= 0"),
    ("sphereface2", {"lam": 3}, "lam", "must be < 1"),
    ("sphereface2", {"t": 0.5}, "t", "must be >= 1"),
    ("sphereface2", {"margin_type": "multiplicative", "margin": 0.5}, "margin", "must be >= 1"),
    ("sphereface2", {"scale": -1}, "scale", "must be > 0"),
    ("mask_proxy", {"reg_weight": -0.5}, "reg_weight", "must be >= 0"),
    ("mmp", {"bias": "nan"}, "bias", "must be a finite number"),
    ("mmp", {"scale": -10}, "scale", "must be > 0"),
])
def test_bad_loss_arguments_are_one_line_errors_naming_the_key(name, kwargs, key, words):
    with pytest.raises(FacevoxError) as err:
        build_loss(name, kwargs, embed_dim=4, num_classes=3)
    assert err.value.where == f"loss.kwargs.{key}" and words in err.value.problem, str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(LossSettingError) as err:  # the loss itself, built directly: a ValueError naming the argument
        create_loss(name, embed_dim=4, num_classes=3, **kwargs)
    assert isinstance(err.value, ValueError) and err.value.key == key


@pytest.mark.parametrize(("name", "kwargs", "key", "words"), [
    ("contrastive", {"margin": -1}, "margin", "must be >= 0"),
    ("contrastive", {"distance": "manhattan"}, "distance", "must be one of euclidean, cosine"),
    ("pair_bce", {"pos_weight": 0}, "pos_weight", "must be > 0"),
])
def test_bad_pair_loss_arguments(name, kwargs, key, words):
    with pytest.raises(FacevoxError) as err:
        build_loss(name, kwargs)
    assert err.value.where == f"loss.kwargs.{key}" and words in err.value.problem


def test_unknown_and_task_set_arguments_name_the_key_and_list_the_valid_ones():
    with pytest.raises(FacevoxError) as err:
        build_loss("arcface", {"scael": 30}, embed_dim=4, num_classes=3)
    assert err.value.where == "loss.kwargs.scael" and err.value.problem.endswith("valid: scale, margin")
    with pytest.raises(FacevoxError) as err:
        build_loss("arcface", {"num_classes": 30}, embed_dim=4, num_classes=3)
    assert err.value.where == "loss.kwargs.num_classes" and "set by the task" in err.value.problem
    with pytest.raises(FacevoxError) as err:
        build_loss("arcfase", {}, embed_dim=4, num_classes=3)
    assert err.value.where == "loss.name" and "valid losses:" in err.value.problem
    with pytest.raises(FacevoxError) as err:
        build_loss("contrastive", {}, embed_dim=4, num_classes=3)
    assert err.value.where == "loss.name" and "pair loss" in err.value.problem


def test_good_arguments_still_build_and_strings_of_numbers_are_read():
    loss = build_loss("aam_softmax", {"scale": "3e1", "margin": 0.2}, embed_dim=4, num_classes=3)
    assert loss.scale == 30.0 and loss.margin == 0.2
    assert build_loss("sphereface2", {"margin_type": "multiplicative"}, embed_dim=4, num_classes=3).margin == 1.2
    assert math.isfinite(float(build_loss("sphereface2", {"scale": 1e4}, embed_dim=4, num_classes=3).bias.item()))


@pytest.mark.parametrize("task", ["speaker", "face"])
def test_tasks_check_loss_kwargs_before_reading_data(task, tmp_path):
    """``--set loss.kwargs.scale=-30``: refused at once, before the data is read (it does not exist here)."""
    if task == "speaker":
        cfg = load_config(SpeakerConfig, None, [f"data.train={tmp_path / 'nowhere'}", "loss.kwargs.scale=-30"])
        run = lambda: speaker_train.train_speaker(cfg, tmp_path / "run")  # noqa: E731
    else:
        cfg = load_config(FaceConfig, None, [f"data.train={tmp_path / 'nowhere'}", "loss.name=arcface",
                                             "loss.kwargs.scale=-30", "model.backbone=mobilefacenet",
                                             "model.embed_dim=8", "data.input_size=[32, 32]",
                                             "model.backbone_kwargs={width: 8}"])
        run = lambda: face_train.train_face(cfg, tmp_path / "run")  # noqa: E731
    with pytest.raises(FacevoxError) as err:
        run()
    assert str(err.value) == "loss.kwargs.scale: must be > 0, got -30"
    assert not (tmp_path / "run").exists()
