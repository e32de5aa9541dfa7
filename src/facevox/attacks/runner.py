"""Running attacks over a set of examples in batches: one row per example, attack and budget.

``plans`` lists ``(attack name, budget, Attack)``; ``measure(clean, adversarial)`` returns the
perceptual measures of one example (numpy arrays as the victim takes them, without the batch axis).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from facevox.attacks.base import Attack, Victim


def run_attacks(victim: Victim, x: torch.Tensor, labels: torch.Tensor, names: Sequence[str],
                plans: Sequence[tuple[str, float | None, Attack]], measure: Callable[[np.ndarray, np.ndarray], dict],
                *, targets: torch.Tensor | None = None, batch_size: int = 8, n_examples: int = 0,
                progress: bool = True, on_batch: Callable[[int, slice, Any], None] | None = None
                ) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray, np.ndarray]]]:
    """Per-example rows for every plan, and up to ``n_examples`` (name, clean, adversarial) examples
    (of the first plan whose attack succeeded on them, largest budget first). ``on_batch(plan index,
    rows of x, AttackResult)`` sees every attacked batch (e.g. to score the adversarial set)."""
    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    adv_of: dict[int, tuple[float, np.ndarray]] = {}
    total = len(plans) * len(x)
    bar = tqdm(total=total, desc="attacks", unit="example", disable=not progress, leave=False)
    for p, (attack_name, budget, attack) in enumerate(plans):
        for s in range(0, len(x), batch_size):
            xb, yb = x[s : s + batch_size], labels[s : s + batch_size]
            tb = targets[s : s + batch_size] if targets is not None else None
            res = attack.run(victim, xb, yb, tb)
            if on_batch is not None:
                on_batch(p, slice(s, s + len(xb)), res)
            for i in range(len(xb)):
                k = s + i
                clean, adv = xb[i].detach().cpu().numpy(), res.x_adv[i].detach().cpu().numpy()
                row = {"example": names[k], "attack": attack_name, "budget": budget, "label": int(yb[i]),
                       "target": int(tb[i]) if tb is not None else None, "clean_pred": int(res.clean_pred[i]),
                       "adv_pred": int(res.adv_pred[i]), "success": bool(res.success[i]), **measure(clean, adv)}
                rows.append(row)
                level = float("inf") if budget is None else float(budget)
                if row["success"] and (k not in adv_of or level > adv_of[k][0]):
                    adv_of[k] = (level, adv)
            bar.update(len(xb))
    bar.close()
    examples = [(names[k].replace("/", "_"), x[k].detach().cpu().numpy(), adv) for k, (_, adv) in
                sorted(adv_of.items())[:n_examples]]
    return rows, examples
