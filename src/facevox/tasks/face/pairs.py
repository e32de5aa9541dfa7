"""Face data sets (a folder per identity) and pairs files in the format of LFW's ``pairs.txt``.

A pairs file starts with ``folds n``; then come the folds in order, each with ``n`` same pairs
(``name i j``) followed by ``n`` different pairs (``name1 i name2 j``). Image ``i`` of ``name`` is
``name/name_%04d.ext`` as in LFW; for data sets named otherwise (ORL's ``s1/1.pgm``), it is the
``i``-th image (from 1) of the identity's folder in natural sort order (2 before 10), which is what
``facevox face pairs`` writes.
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


def resolve_image(root: Path, identities: dict[str, list[Path]], name: str, index: int, where: str) -> Path:
    """Image ``index`` (from 1) of ``name``: LFW's ``name/name_%04d.*`` if it exists, else the index-th file."""
    files = identities.get(name)
    if not files:
        raise FacevoxError(f"{where}: no images of '{name}' under {root}")
    stem = f"{name}_{index:04d}"
    for f in files:
        if f.stem == stem:
            return f
    if not 1 <= index <= len(files):
        raise FacevoxError(f"{where}: '{name}' has {len(files)} images, no image {index}")
    return files[index - 1]


def read_pairs(path: str | Path, root: str | Path) -> list[Pair]:
    """Read an LFW-format pairs file; images resolved under ``root``."""
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise FacevoxError("pairs file not found", path)
    lines = [ln.split() for ln in read_text(path).splitlines() if ln.strip()]
    if not lines:
        raise FacevoxError("empty pairs file", path)
    try:
        folds, n = (int(v) for v in lines[0])
    except ValueError:
        raise FacevoxError(f"line 1 must be 'folds n', got '{' '.join(lines[0])}'", path) from None
    body = lines[1:]
    if len(body) != 2 * folds * n:
        raise FacevoxError(f"header says {folds} folds x {2 * n} pairs = {2 * folds * n}, file has {len(body)}", path)
    identities = read_identities(root)
    pairs = []
    for k, cells in enumerate(body):
        where = f"{path}: line {k + 2}"
        fold, same_block = divmod(k, 2 * n)
        try:
            if len(cells) == 3:
                a = resolve_image(root, identities, cells[0], int(cells[1]), where)
                b = resolve_image(root, identities, cells[0], int(cells[2]), where)
                same = True
            elif len(cells) == 4:
                a = resolve_image(root, identities, cells[0], int(cells[1]), where)
                b = resolve_image(root, identities, cells[2], int(cells[3]), where)
                same = False
            else:
                raise FacevoxError(f"{where}: expected 'name i j' or 'name1 i name2 j'")
        except ValueError:
            raise FacevoxError(f"{where}: image numbers must be integers") from None
        if same != (same_block < n):
            raise FacevoxError(f"{where}: a {'same' if same else 'different'} pair where the format expects the other")
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
