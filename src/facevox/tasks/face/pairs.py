"""Face data sets (a folder per identity) and pairs files in the format of LFW's ``pairs.txt``.

A pairs file starts with a header: ``folds n`` (View 2's ``pairs.txt``: ``10 300``) or a single
``n`` (View 1's ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: one fold). Then come the folds in
order, each with ``n`` same pairs (``name i j``) followed by ``n`` different pairs
(``name1 i name2 j``).

Image ``i`` of ``name``: an identity folder is *LFW-named* when any of its files is named
``<name>_<digits>.<ext>``; image ``i`` is then ``name/name_%04d.<ext>`` and nothing else: when that
file is missing, reading the pairs file fails naming the file, the line and the missing name (or,
with ``skipped``, the pair is left out and listed) -- it never falls back to another photo. Only in a
folder with no file named that way (ORL's ``s1/1.pgm``) is image ``i`` the ``i``-th file (from 1) of
the folder in natural sort order (2 before 10), which is what ``facevox face pairs`` writes.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text
from facevox.image.io import list_image_files
from facevox.textfile import check_utf8_name, read_text


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


@dataclass(frozen=True)
class SkippedPair:
    """A pair left out because an image it names is missing (``read_pairs(..., skipped=[])``)."""

    line: int
    text: str
    missing: str


class MissingImage(FacevoxError):
    """An LFW-named identity has no ``name_%04d`` file for the index a pair gives."""

    def __init__(self, problem: str, missing: str) -> None:
        super().__init__(problem)
        self.missing = missing


def read_identities(root: str | Path) -> dict[str, list[Path]]:
    """``{identity: [image paths, sorted]}`` from a folder per identity (nested folders allowed)."""
    root = Path(root)
    files = list_image_files(root)
    out: dict[str, list[Path]] = {}
    for f in files:
        check_utf8_name(f)  # identity names go into pairs files and reports
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            raise FacevoxError(f"image directly under the root ({rel}); expected <root>/<identity>/...", root)
        out.setdefault(rel.parts[0], []).append(f)
    return {name: sorted(files, key=_natural) for name, files in sorted(out.items())}


def _natural(path: Path) -> list:
    """Sort key with numbers compared as numbers: 2.pgm before 10.pgm."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def is_lfw_named(name: str, files: list[Path]) -> bool:
    """Whether any file of identity ``name`` is named ``<name>_<digits>.<ext>`` (LFW's style)."""
    pattern = re.compile(re.escape(name) + r"_\d+")
    return any(pattern.fullmatch(f.stem) for f in files)


def resolve_image(root: Path, identities: dict[str, list[Path]], name: str, index: int, where: str,
                  lfw_named: dict[str, bool] | None = None) -> Path:
    """Image ``index`` (from 1) of ``name``: ``name/name_%04d.*`` in an LFW-named folder (missing: an
    error, :class:`MissingImage`), else the index-th file of the folder (see the module docstring).
    ``lfw_named`` caches :func:`is_lfw_named` per identity."""
    files = identities.get(name)
    if not files:
        raise FacevoxError(f"{where}: no images of '{name}' under {root}")
    stem = f"{name}_{index:04d}"
    for f in files:
        if f.stem == stem:
            return f
    named = lfw_named.get(name) if lfw_named is not None else None
    if named is None:
        named = is_lfw_named(name, files)
        if lfw_named is not None:
            lfw_named[name] = named
    if named:
        raise MissingImage(f"{where}: no image {stem}.* in {root / name} (its files are named {name}_NNNN, so "
                           f"image {index} is that file; no other photo is used in its place)", stem)
    if not 1 <= index <= len(files):
        raise FacevoxError(f"{where}: '{name}' has {len(files)} images, no image {index}")
    return files[index - 1]


def _header(cells: list[str], path: Path) -> tuple[int, int]:
    """(folds, n) from ``folds n`` or ``n`` (one fold)."""
    try:
        values = [int(v) for v in cells]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise FacevoxError(f"line 1 must be 'folds n' or 'n' (positive integers), got '{' '.join(cells)}'", path)
    return (1, values[0]) if len(values) == 1 else (values[0], values[1])


def pairs_folds(path: str | Path) -> int:
    """The number of folds a pairs file's header gives."""
    path = Path(path)
    first = next((ln.split() for ln in read_text(path).splitlines() if ln.strip()), None)
    if first is None:
        raise FacevoxError("empty pairs file", path)
    return _header(first, path)[0]


def read_pairs(path: str | Path, root: str | Path, skipped: list[SkippedPair] | None = None) -> list[Pair]:
    """Read an LFW-format pairs file (header ``folds n`` or ``n``); images resolved under ``root``.

    ``skipped``: a list to which pairs naming a missing image of an LFW-named identity are added
    (and left out) instead of raising."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise FacevoxError("pairs file not found", path)
    lines = [ln.split() for ln in read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise FacevoxError("empty pairs file", path)
    folds, n = _header(lines[0], path)
    body = lines[1:]
    if len(body) != 2 * folds * n:
        raise FacevoxError(f"header says {folds} fold{'s' if folds > 1 else ''} x {2 * n} pairs = {2 * folds * n}, "
                           f"file has {len(body)}", path)
    identities = read_identities(root)
    lfw_named: dict[str, bool] = {}
    pairs = []
    for k, cells in enumerate(body):
        where = f"{path}: line {k + 2}"
        fold, same_block = divmod(k, 2 * n)
        try:
            if len(cells) == 3:
                same = True
                a_name, i, b_name, j = cells[0], int(cells[1]), cells[0], int(cells[2])
            elif len(cells) == 4:
                same = False
                a_name, i, b_name, j = cells[0], int(cells[1]), cells[2], int(cells[3])
            else:
                raise FacevoxError(f"{where}: expected 'name i j' or 'name1 i name2 j'")
        except ValueError:
            raise FacevoxError(f"{where}: image numbers must be integers") from None
        if same != (same_block < n):
            raise FacevoxError(f"{where}: a {'same' if same else 'different'} pair where the format expects the other")
        try:
            a = resolve_image(root, identities, a_name, i, where, lfw_named)
            b = resolve_image(root, identities, b_name, j, where, lfw_named)
        except MissingImage as err:
            if skipped is None:
                raise
            skipped.append(SkippedPair(k + 2, " ".join(cells), err.missing))
            continue
        pairs.append(Pair(a, b, same, fold))
    return pairs


def _same_and_different(identities: dict[str, list[Path]], names: list[str]):
    same = [(n, i + 1, n, j + 1) for n in names for i, j in itertools.combinations(range(len(identities[n])), 2)]
    diff = [(a, i + 1, b, j + 1) for a, b in itertools.combinations(names, 2)
            for i in range(len(identities[a])) for j in range(len(identities[b]))]
    return same, diff


def make_pairs(identities: dict[str, list[Path]], folds: int = 10, per_fold: int = 30,
               seed: int = 0, disjoint: bool | None = None) -> list[tuple[str, int, str, int]]:
    """Pairs in LFW's layout: ``folds`` folds of ``per_fold`` same then ``per_fold`` different pairs.

    ``disjoint``: identities are dealt to folds (after a seeded shuffle) so that no person appears
    in two folds, as in LFW's View 2; that needs at least 2 people per fold. Otherwise all pairs
    are drawn from all people and dealt to folds (a person can be in several folds). ``None``:
    disjoint when there are enough people. A same pair is ``(name, i, name, j)``, indices from 1.
    """
    names = [n for n, files in identities.items() if files]
    if disjoint is None:
        disjoint = len(names) >= 2 * folds
    rng = np.random.default_rng(seed)
    if disjoint:
        if len(names) < 2 * folds:
            raise FacevoxError(f"{len(names)} identities cannot fill {folds} folds with 2 people each")
        order = [names[i] for i in rng.permutation(len(names))]
        groups = [sorted(order[f::folds]) for f in range(folds)]
    else:
        groups = [names]
    pools = [_same_and_different(identities, g) for g in groups]
    need = per_fold if disjoint else per_fold * folds
    for g, (same, diff) in zip(groups, pools, strict=True):
        if len(same) < need or len(diff) < need:
            raise FacevoxError(f"{len(g)} identities give {len(same)} same and {len(diff)} different pairs, fewer "
                               f"than the {need} needed; lower --per-fold or --folds")
    picks = [(rng.permutation(len(same))[:need], rng.permutation(len(diff))[:need]) for same, diff in pools]
    out: list[tuple[str, int, str, int]] = []
    for f in range(folds):
        (same, diff), (si, di) = (pools[f], picks[f]) if disjoint else (pools[0], picks[0])
        lo, hi = (0, per_fold) if disjoint else (f * per_fold, (f + 1) * per_fold)
        out += [same[i] for i in sorted(si[lo:hi])] + [diff[i] for i in sorted(di[lo:hi])]
    return out


def write_pairs(path: str | Path, pairs: list[tuple[str, int, str, int]], folds: int, per_fold: int) -> Path:
    lines = [f"{folds}\t{per_fold}"]
    for a, i, b, j in pairs:
        lines.append(f"{a}\t{i}\t{j}" if a == b else f"{a}\t{i}\t{b}\t{j}")
    return atomic_write_text(path, "\n".join(lines) + "\n")
