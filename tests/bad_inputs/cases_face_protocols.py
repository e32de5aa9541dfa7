"""Standard face-verification inputs of ``face eval``: InsightFace ``.bin`` files (planted Python
objects, truncated, not a pickle, wrong layout), LFW-named folders missing an image a pair names, and
photos that are not aligned crops refused with ``--refuse-unaligned``."""

from __future__ import annotations

import pickle

from bad_inputs import files
from bad_inputs.commands import fa_eval
from bad_inputs.harness import Case, Env


def _pngs(e: Env, n: int) -> list[bytes]:
    return [files.png(e.path(f"img{i}.png"), size=16, seed=i).read_bytes() for i in range(n)]


def bin_file(e: Env, name: str, obj=None, cut: float | None = None, raw: bytes | None = None) -> str:
    """An InsightFace .bin of 10 pairs (or ``obj`` pickled, or ``raw`` bytes), cut to ``cut`` of its length."""
    if raw is None:
        raw = pickle.dumps(obj if obj is not None else (_pngs(e, 20), [i % 2 == 0 for i in range(10)]), protocol=4)
    if cut is not None:
        raw = raw[: int(len(raw) * cut)]
    return str(e.write(name, raw))


class _Plant:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def planted_bin(e: Env) -> str:
    marker = str(e.forbid(e.path("PLANTED")))
    return bin_file(e, "evil.bin", obj=(_pngs(e, 20), [_Plant(marker)] + [True] * 9))


def fa_bin(e: Env, path: str, opts: list[str] | None = None) -> list[str]:
    return ["face", "eval", path, "--model", str(e.fx.model_fa), "--out", str(e.out), *(opts or [])]


def lfw_named_people(e: Env) -> str:
    """A copy of the fixture people whose p0 is LFW-named (p0_0001.png, p0_0002.png; no image 3)."""
    root = e.copy(e.fx.people, "people")
    for i in (1, 2):
        (root / "p0" / f"{i}.png").rename(root / "p0" / f"p0_{i:04d}.png")
    return str(root)


def photo_people(e: Env) -> str:
    """The fixture people's names on 250x250 photos (not aligned crops of the model's size)."""
    root = e.path("photos")
    for p in range(4):
        for i in range(1, 4):
            files.png(root / f"p{p}" / f"{i}.png", size=250, seed=10 * p + i)
    return str(root)


CASES = [
    Case("face-eval-bin-python-object", "an InsightFace .bin whose pickle would create a file", "evil.bin",
         lambda e: fa_bin(e, planted_bin(e))),
    Case("face-eval-bin-truncated", "an InsightFace .bin cut in half", "cut.bin",
         lambda e: fa_bin(e, bin_file(e, "cut.bin", cut=0.5))),
    Case("face-eval-bin-not-pickle", "a .bin that is not a pickle", "junk.bin",
         lambda e: fa_bin(e, bin_file(e, "junk.bin", raw=b"\x89PNG this is no pickle" * 8))),
    Case("face-eval-bin-odd-images", "a .bin with 19 images for 10 pairs", "odd.bin",
         lambda e: fa_bin(e, bin_file(e, "odd.bin", obj=(_pngs(e, 19), [True, False] * 5)))),
    Case("face-eval-bin-bad-image", "a .bin whose last image is not an image", "bad.bin",
         lambda e: fa_bin(e, bin_file(e, "bad.bin", obj=(_pngs(e, 19) + [b"garbage"], [True, False] * 5)),
                          ["--workers", "0"])),
    Case("face-eval-bin-with-root", "a .bin given with --root", "--root",
         lambda e: fa_bin(e, bin_file(e, "lfw.bin"), ["--root", str(e.fx.people)])),
    Case("face-eval-pairs-lfw-image-missing", "a pair naming image 3 of an LFW-named folder that has 2", "p0_0003",
         lambda e: fa_eval(e, root=lfw_named_people(e),
                           pairs=e.write("pairs.txt", "1\np0\t1\t3\np0\t1\tp1\t1\n"))),
    Case("face-eval-refuse-unaligned", "250x250 photos, not aligned crops, with --refuse-unaligned",
         "do not look like aligned face crops",
         lambda e: fa_eval(e, root=photo_people(e), opts=["--refuse-unaligned"])),
    Case("face-eval-pairs-bad-header", "a pairs file whose header is three numbers", "line 1 must be",
         lambda e: fa_eval(e, pairs=e.write("pairs.txt", "1 1 1\np0\t1\t2\np0\t1\tp1\t1\n"))),
]
