"""Adversarial attacks on facevox's models and the measures of what they cost (see base.py)."""

from facevox.attacks import foolhd  # noqa: F401
from facevox.attacks.base import Attack, AttackResult, Victim, create_attack
from facevox.attacks.gradient import FGSM, PGD  # registers "fgsm" and "pgd"

__all__ = ["FGSM", "PGD", "Attack", "AttackResult", "Victim", "create_attack"]
