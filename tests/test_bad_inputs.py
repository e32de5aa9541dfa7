"""The bad-input corpus (``tests/bad_inputs``): each case must end in exit status 2 with one line on stderr,
``facevox: error: ...`` naming the file or key at fault, no traceback and nothing written.

The cases run in-process through ``facevox.cli.main`` on tiny inputs built once per session
(:mod:`bad_inputs.fixtures`); ``scripts/bad_inputs_table.py`` runs the same cases into
``docs/bad_inputs.md``. The last tests check the harness itself: that it can fail.
"""

from __future__ import annotations

import shutil
import sys
import time
from types import SimpleNamespace

import pytest

from bad_inputs import CASES
from bad_inputs import commands as c
from bad_inputs.fixtures import prepared
from bad_inputs.harness import Case, captured, run_case

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def fx(tmp_path_factory):
    with prepared(tmp_path_factory.mktemp("bad_inputs")) as fixtures:
        yield fixtures


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, fx, tmp_path):
    outcome = run_case(case, fx, tmp_path / "case")
    assert not outcome.problems, outcome.report()


VALID = {  # the commands the cases start from; each case changes one thing of one of them
    "speaker-verify": c.sp_verify, "speaker-eval": c.sp_eval, "fakeface-predict": c.ff_predict,
    "fakeface-eval": c.ff_eval, "face-verify": c.fa_verify, "face-eval": c.fa_eval, "invert-run": c.in_run,
    "invert-run-encoder": c.in_encoder_run,
    "eval-scores": lambda e: ["eval-scores", str(e.fx.scores), "--out", str(e.out)],
}


@pytest.mark.parametrize("name", list(VALID))
def test_the_valid_commands_work(name, fx, tmp_path):
    outcome = run_case(Case(name, "valid", "", VALID[name]), fx, tmp_path / "case")
    assert outcome.status == 0 and not outcome.traceback, outcome.report()


def test_the_corpus_is_large_and_covers_every_group():
    assert len(CASES) >= 110
    firsts = {c.id.split("-")[0] for c in CASES}
    assert {"speaker", "fakeface", "face", "invert", "list", "demo", "eval"} <= firsts


# ------------------------------------------------------------------------------------------ the harness


def _fake_main(behaviour: str):
    def main(argv):
        if behaviour == "accept":
            return 0
        if behaviour == "crash":
            raise ValueError("boom")
        if behaviour == "two-lines":
            print("facevox: error: x: one", file=sys.stderr)
            print("and another", file=sys.stderr)
            return 2
        if behaviour == "write":
            with open("stray.txt", "w") as fh:  # the working directory is the case's folder
                fh.write("x")
        print("facevox: error: the_key: is wrong", file=sys.stderr)
        return 2

    return main


@pytest.mark.parametrize(("behaviour", "problem"), [
    ("accept", "exit status 0, expected 2 (silently accepted)"),
    ("crash", "traceback: ValueError: boom"),
    ("two-lines", "stderr has 2 lines, expected one"),
    ("write", "wrote TMP/stray.txt"),
    ("good", None),
])
def test_the_harness_sees_each_failure(fx, tmp_path, behaviour, problem):
    case = Case("self-test", "harness self-test", "the_key", lambda e: ["list"])
    outcome = run_case(case, fx, tmp_path / "case", main=_fake_main(behaviour))
    if problem is None:
        assert outcome.problems == [] and outcome.kind == "one-line error"
    else:
        assert problem in outcome.problems, outcome.problems


def test_the_harness_needs_the_expected_name(fx, tmp_path):
    case = Case("self-test", "harness self-test", "other_key", lambda e: ["list"])
    outcome = run_case(case, fx, tmp_path / "case", main=_fake_main("good"))
    assert outcome.problems == ["the error line does not name 'other_key'"]


def test_the_harness_stops_a_case_that_runs_on(fx, tmp_path):
    def slow(argv):
        time.sleep(5)
        return 2

    outcome = run_case(Case("self-test", "slow", "x", lambda e: ["list"]), fx, tmp_path / "case", main=slow,
                       time_limit=0.2)
    assert outcome.timed_out and outcome.kind == "timed out" and outcome.seconds < 3


def test_restart_overrides_the_settings_check(fx, tmp_path):
    """The refusal to resume with another train.lr is not blanket: --restart trains afresh."""
    from facevox.cli import main

    run = tmp_path / "run"
    shutil.copytree(fx.run_sp, run)
    e = SimpleNamespace(fx=fx, out=run)
    with captured():
        assert main(c.sp_train(e, "train.lr=0.5", opts=["--restart"])) == 0
    assert (run / "model" / "model.safetensors").is_file()
