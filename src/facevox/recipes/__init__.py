"""The built-in recipes: named YAML run settings shipped inside the package (``<task>/<name>.yaml``).

``--recipe`` takes a file or a built-in name: ``ecapa_mmp``, ``speaker/ecapa_mmp``,
``ecapa_mmp.yaml`` or the old source-tree path ``recipes/speaker/ecapa_mmp.yaml`` all name
``speaker/ecapa_mmp.yaml`` here. An existing file always wins over a name.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

from facevox.errors import FacevoxError

RECIPE_DIR = Path(__file__).resolve().parent
SUFFIXES = (".yaml", ".yml")


def list_recipes(pattern: str | None = None) -> list[str]:
    """The built-in recipe names as ``task/name``, sorted; ``pattern`` is a glob on that name or on ``name``."""
    names = sorted(f"{p.parent.name}/{p.stem}" for p in RECIPE_DIR.glob("*/*") if p.suffix in SUFFIXES)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n.split("/")[1], pattern)]
    return names


def describe_recipe(name: str) -> str:
    """The start of a built-in recipe's leading comment, at most 90 characters (for ``facevox list recipes``)."""
    words: list[str] = []
    for line in resolve_recipe(name).read_text(encoding="utf-8").splitlines():
        text = line.strip().lstrip("#").strip()
        if not line.lstrip().startswith("#") or not text or text.startswith("facevox "):
            break  # the comment ends, or its usage example starts
        words += text.split()
    text = " ".join(words).rstrip(":")
    return text if len(text) <= 90 else text[:87].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def resolve_recipe(name_or_path: str | Path) -> Path:
    """The recipe file that ``name_or_path`` names: an existing file, else a built-in recipe.

    A name is ``name``, ``task/name`` or either with ``.yaml``, optionally after ``recipes/``.
    An unknown name raises a one-line :class:`FacevoxError` listing the built-in names; anything
    else that is not a file (an absolute or deeper path) is returned unchanged, for the reader
    to report as a missing file.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    parts = _name_parts(str(name_or_path))
    if parts is None:
        return path
    task, name = parts
    found = [p for p in sorted(RECIPE_DIR.glob(f"{task or '*'}/{name}.*")) if p.suffix in SUFFIXES and p.is_file()]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:  # the same name in two tasks: ask for task/name
        names = ", ".join(f"{p.parent.name}/{p.stem}" for p in found)
        raise FacevoxError(f"recipe name is ambiguous; give one of: {names}", name_or_path)
    raise FacevoxError(f"neither a recipe file nor a built-in recipe; built-in: {', '.join(list_recipes())}",
                       name_or_path)


def _name_parts(text: str) -> tuple[str, str] | None:
    """(task or '', name) when ``text`` has the form of a recipe name, else None."""
    p = PurePosixPath(text.replace("\\", "/"))
    if p.is_absolute() or any(part in ("", ".", "..") for part in p.parts):
        return None
    parts = list(p.parts)
    if len(parts) == 3 and parts[0] == "recipes":  # the source-tree path of older versions
        parts = parts[1:]
    if not 1 <= len(parts) <= 2:
        return None
    stem = parts[-1]
    for suffix in SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    if not stem or any(c in "".join(parts[:-1]) + stem for c in "*?[]"):
        return None
    return (parts[0] if len(parts) == 2 else ""), stem
