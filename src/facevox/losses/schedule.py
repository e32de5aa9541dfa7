"""Training-time schedules of a loss: margin warm-up for every margin loss, SphereFace's lambda annealing.

Every loss with a margin is a :class:`MarginSchedule`. ``loss.step_hook(warmup_steps)`` gives a
:class:`~facevox.train.Trainer` step hook; the Trainer calls it with the step number before every
optimiser step, and it sets the loss's scheduled values as a pure function of that number (and of
settings fixed when the hook was built), so a resumed run sees the values an uninterrupted one saw:

* the margin goes linearly from the loss's "no margin" value (``neutral_margin``: 0, or 1 for a
  multiplicative margin) to the margin the loss had when the hook was built, over ``warmup_steps``
  steps, and stays there (``warmup_steps = 0``: the full margin from step 0);
* a loss with more to schedule extends :meth:`MarginSchedule.schedule` (SphereFace sets its
  annealing weight lambda there, from its own ``base``, ``gamma``, ``power``, ``lambda_min``).

The tasks build their hooks with :func:`loss_step_hooks` from ``loss.margin_warmup_epochs``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from facevox.errors import FacevoxError

StepHook = Callable[[int], None]


def warmup_value(step: int, start: float, target: float, warmup_steps: int) -> float:
    """``start`` at step 0, linearly to ``target`` at ``warmup_steps``, ``target`` after (and when 0)."""
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    frac = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    return start + (target - start) * frac


def check_warmup_epochs(value: Any, where: str = "loss.margin_warmup_epochs") -> float:
    """A warm-up length in epochs: a finite number >= 0, else a one-line FacevoxError at ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FacevoxError(f"must be a finite number of epochs, got {value!r}", where)
    if value < 0:
        raise FacevoxError(f"must be >= 0 (0: the full margin from the first step), got {value:g}", where)
    return float(value)


class MarginSchedule:
    """Mixin of every loss with a ``margin`` attribute: the warm-up schedule of the margin."""

    margin: float
    neutral_margin: float = 0.0  # the margin that means "no margin", where a warm-up starts

    def schedule(self, step: int, *, target_margin: float, warmup_steps: int) -> None:
        """Set every scheduled value for optimiser step ``step`` (a pure function of its arguments)."""
        self.margin = warmup_value(step, float(self.neutral_margin), target_margin, warmup_steps)

    def step_hook(self, warmup_steps: int = 0) -> StepHook:
        """A Trainer step hook: :meth:`schedule` at each step, the margin warming up to its present value."""
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        target = float(self.margin)

        def hook(step: int) -> None:
            self.schedule(step, target_margin=target, warmup_steps=warmup_steps)

        hook.target_margin = target  # type: ignore[attr-defined]  # for messages and tests
        hook.warmup_steps = warmup_steps  # type: ignore[attr-defined]
        return hook


def loss_step_hooks(loss: Any, warmup_epochs: Any, steps_per_epoch: int, total_steps: int | None = None, *,
                    where: str = "loss.margin_warmup_epochs") -> list[StepHook]:
    """The step hooks of ``loss`` in a task: margin warm-up over ``warmup_epochs`` (floored to whole
    steps) and whatever else the loss schedules. A loss without a schedule gets none; a warm-up
    that outlasts training (``total_steps``) or a loss without a margin to warm up gets a note on stderr."""
    warmup_epochs = check_warmup_epochs(warmup_epochs, where)
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    name = getattr(loss, "facevox_spec", {}).get("name", type(loss).__name__)
    if not isinstance(loss, MarginSchedule):
        if warmup_epochs > 0:
            print(f"note: {where} has no effect: the {name} loss has no margin", file=sys.stderr)
        return []
    steps = int(warmup_epochs * steps_per_epoch)
    hook = loss.step_hook(steps)
    if warmup_epochs > 0 and hook.target_margin == float(loss.neutral_margin):  # type: ignore[attr-defined]
        print(f"note: {where} has no effect: the {name} loss's margin is already its no-margin value "
              f"{hook.target_margin:g}", file=sys.stderr)  # type: ignore[attr-defined]
    elif total_steps is not None and steps > total_steps:
        print(f"note: the margin warm-up ({steps} steps) outlasts training ({total_steps} steps): "
              "the margin never reaches its target", file=sys.stderr)
    return [hook]
