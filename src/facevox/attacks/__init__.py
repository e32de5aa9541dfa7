"""Adversarial attacks on facevox's models and the measures of what they cost (see base.py)."""

from facevox.attacks.base import Attack, AttackResult, Victim, create_attack

__all__ = ["Attack", "AttackResult", "Victim", "create_attack"]
