"""Output folders written as one unit (facevox.outdir): swapped in whole, refused when they hold other
things, one line for a full disk with the old outputs intact, and the leftovers of killed runs removed."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from facevox import outdir
from facevox.errors import FacevoxError
from facevox.outdir import MARKER, clean_stale_temporaries, output_dir, prepare_output, writing


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder: Path) -> list[str]:
    """The temporaries next to ``folder``."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def write_output(out: Path, text: str) -> None:
    with output_dir(out, "test") as tmp:
        (tmp / "metrics.json").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text(text)


def test_output_is_swapped_in_whole_and_marked(tmp_path):
    out = tmp_path / "runs" / "eval"  # parents created on demand
    write_output(out, "one")
    assert (out / MARKER).is_file() and "written by facevox" in (out / MARKER).read_text()
    (out / "from-the-old-run.png").write_text("stale")
    write_output(out, "two")
    # the old folder is replaced as a whole: nothing of the old run survives next to the new files
    assert sorted(snapshot(out)) == [MARKER, "metrics.json", "sub/a.txt"]
    assert (out / "metrics.json").read_text() == "two" and not siblings(out)


def test_empty_and_legacy_folders_are_replaced(tmp_path):
    (tmp_path / "empty").mkdir()
    write_output(tmp_path / "empty", "x")
    legacy = tmp_path / "legacy"  # written by a facevox from before the marker
    legacy.mkdir()
    for name in ("metrics.json", "report.html", "roc.png", "000_a_saliency.png"):
        (legacy / name).write_text("old")
    write_output(legacy, "new")
    assert (legacy / "metrics.json").read_text() == "new" and not (legacy / "roc.png").exists()


@pytest.mark.parametrize("extra", [["model"], ["notes.txt"], ["config.yaml"], ["report.html", "data.csv"]])
def test_a_folder_with_other_things_is_refused_and_left_alone(tmp_path, extra):
    out = tmp_path / "run"
    out.mkdir()
    for name in extra:
        (out / name).write_text("mine")
    before = snapshot(out)
    with pytest.raises(FacevoxError, match="did not write as an output") as err:
        prepare_output(out)
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(FacevoxError, match="did not write as an output"), output_dir(out):
        pytest.fail("the block must not run")
    assert snapshot(out) == before and not siblings(out)


def test_a_file_as_output_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FacevoxError, match="not a folder"):
        prepare_output(tmp_path / "f")


def test_a_failure_in_the_block_keeps_the_old_outputs(tmp_path):
    out = tmp_path / "eval"
    write_output(out, "old")
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="boom"), output_dir(out) as tmp:
        (tmp / "metrics.json").write_text("new")
        raise RuntimeError("boom")
    assert snapshot(out) == before and not siblings(out)


@pytest.mark.parametrize(("code", "reason"), [(errno.ENOSPC, "No space left on device"),
                                              (errno.EROFS, "Read-only file system"),
                                              (errno.EACCES, "Permission denied")])
def test_os_errors_while_writing_are_one_line_and_change_nothing(tmp_path, code, reason):
    out = tmp_path / "eval"
    write_output(out, "old")
    before = snapshot(out)
    with pytest.raises(FacevoxError) as err, output_dir(out) as tmp:
        (tmp / "metrics.json").write_text("new")
        raise OSError(code, os.strerror(code))  # what write() raises: no file name
    assert str(err.value) == f"{out}: cannot write the output: {reason}; nothing was changed"
    assert snapshot(out) == before and not siblings(out)
    # an error naming a file in the staging folder is shown with the path it would have had
    with pytest.raises(FacevoxError) as err, output_dir(out) as tmp:
        raise OSError(code, os.strerror(code), str(tmp / "roc.png"))
    assert str(err.value).startswith(f"{out / 'roc.png'}: cannot write the output: {reason}")
    assert snapshot(out) == before and not siblings(out)


def test_os_errors_about_other_files_pass_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError), output_dir(tmp_path / "eval"):
        open(tmp_path / "no-such-input.wav", "rb")  # noqa: SIM115  (an input, not the output)
    assert not (tmp_path / "eval").exists() and not siblings(tmp_path / "eval")


def test_a_failed_swap_puts_the_previous_version_back(tmp_path, monkeypatch):
    out = tmp_path / "eval"
    write_output(out, "old")
    before = snapshot(out)
    real_replace = os.replace
    calls = []

    def replace(src, dst):  # the second rename of atomic_dir's swap (staging -> out) fails
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(FacevoxError, match="No space left"):
        write_output(out, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert snapshot(out) == before


def test_nested_blocks_write_into_the_outer_staging_folder(tmp_path):
    out = tmp_path / "eval"
    with output_dir(out) as tmp:
        (tmp / "scores.csv").write_text("s")
        with output_dir(tmp) as inner:  # e.g. classification_report called by fakeface eval
            assert inner == tmp
            (inner / "metrics.json").write_text("m")
        assert not out.exists()  # nothing visible before the outer block ends
    assert sorted(snapshot(out)) == [MARKER, "metrics.json", "scores.csv"]


def test_a_symlinked_output_is_followed(tmp_path):
    real = tmp_path / "real"
    write_output(real, "old")
    (tmp_path / "link").symlink_to(real)
    write_output(tmp_path / "link", "new")
    assert (tmp_path / "link").is_symlink() and (real / "metrics.json").read_text() == "new"


def test_writing_turns_a_full_disk_into_one_line(tmp_path):
    with pytest.raises(FacevoxError) as err, writing(tmp_path / "p.json"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(err.value).startswith(f"{tmp_path / 'p.json'}: cannot write the output: No space left")
    with pytest.raises(PermissionError), writing(tmp_path / "p.json"):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else/input.png")


# ----------------------------------------------------------------------------------- leftovers of killed runs


def _age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (old, old), follow_symlinks=False)


def test_clean_stale_temporaries(tmp_path):
    (tmp_path / "ckpt.pt").write_text("current")
    stale_file = tmp_path / ".ckpt.pt.ab_cd123.tmp"  # atomic_path's name: 8 characters of tempfile's alphabet
    stale_file.write_text("half")
    stale_dir = tmp_path / ".ckpt.pt.zz99zz99.tmp"
    (stale_dir / "inner").mkdir(parents=True)
    stale_old = tmp_path / ".ckpt.pt.old12345.old"
    (stale_old / "x").mkdir(parents=True)
    keep = [tmp_path / n for n in (".ckpt.pt.abc.tmp", ".ckpt.pt.abcdefgh.tmp.bak", ".other.abcdefgh.tmp",
                                   ".ckpt.pt.ABCDEFGH.tmp", "ckpt.pt.abcdefgh.tmp", ".ckpt.ptXabcdefgh.tmp")]
    for p in keep:
        p.write_text("not ours")
    for p in [stale_file, stale_dir, stale_old, *keep]:
        _age(p)
    fresh = tmp_path / ".ckpt.pt.fresh123.tmp"  # written after this process started: maybe ours, kept
    fresh.write_text("in progress")
    link = tmp_path / ".ckpt.pt.link1234.tmp"
    link.symlink_to(tmp_path / "ckpt.pt")
    _age(link)

    removed = clean_stale_temporaries(tmp_path, "ckpt.pt")
    assert sorted(removed) == sorted([stale_file, stale_dir, stale_old])
    assert all(p.exists() for p in keep) and fresh.exists() and link.is_symlink()
    assert (tmp_path / "ckpt.pt").read_text() == "current"
    assert clean_stale_temporaries(tmp_path / "missing", "x") == []


def test_a_kill_inside_the_swap_is_repaired(tmp_path):
    # killed between atomic_dir's two renames: OUT is gone, its previous version is in .OUT.*.old/x
    old = tmp_path / ".eval.k1ll3d00.old"
    (old / "x").mkdir(parents=True)
    (old / "x" / "metrics.json").write_text("previous")
    half = tmp_path / ".eval.h4lf0000.tmp"
    half.mkdir()
    (half / "roc.png").write_text("new")
    _age(old)
    _age(half)
    prepare_output(tmp_path / "eval")  # what every evaluation calls first
    assert (tmp_path / "eval" / "metrics.json").read_text() == "previous"
    assert not siblings(tmp_path / "eval")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="elsewhere the start is the time of the import")
def test_process_start_is_when_the_process_started():
    import subprocess
    import sys

    before = time.time()
    done = subprocess.run([sys.executable, "-c", "import time; time.sleep(1.5); from facevox import outdir; "
                           "print(outdir.PROCESS_START)"], capture_output=True, text=True, timeout=60)
    after = time.time()
    start = float(done.stdout)
    assert before - 1.0 <= start <= after - 1.5  # not the time of the import, 1.5 s later
    assert time.time() >= outdir.PROCESS_START


def test_the_current_folder_is_not_an_output(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(FacevoxError, match="is the current folder"):
        prepare_output(".")
    with pytest.raises(FacevoxError, match="is the current folder"):
        prepare_output(tmp_path)
    assert (tmp_path / "here").is_dir()
