"""Trial lists in VoxCeleb's form and in Kaldi/WeSpeaker's."""

from __future__ import annotations

import re

import pytest

from facevox.errors import FacevoxError
from facevox.tasks.speaker.corpus import Trial, read_trials

VOX = ("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
       "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
KALDI = ("id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav target\n"
         "id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav nontarget\n")


def test_voxceleb_and_kaldi_forms_read_the_same(tmp_path):
    (tmp_path / "vox.txt").write_text(VOX)
    (tmp_path / "kaldi.txt").write_text("# a comment\n\n" + KALDI)
    vox, kaldi = read_trials(tmp_path / "vox.txt"), read_trials(tmp_path / "kaldi.txt")
    assert vox == kaldi
    assert vox[0] == Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav")
    assert [t.label for t in vox] == [1, 0]


def test_kaldi_bad_label_names_the_line(tmp_path):
    (tmp_path / "t.txt").write_text(KALDI + "a.wav b.wav maybe\n")
    with pytest.raises(FacevoxError, match=re.escape("line 3: expected '<file a> <file b> <target|nontarget>'")):
        read_trials(tmp_path / "t.txt")


def test_mixed_forms_are_an_error(tmp_path):
    (tmp_path / "t.txt").write_text(KALDI + "1 a.wav b.wav\n")
    with pytest.raises(FacevoxError, match="line 3"):
        read_trials(tmp_path / "t.txt")
    (tmp_path / "u.txt").write_text(VOX + "a.wav b.wav target\n")
    with pytest.raises(FacevoxError, match=re.escape("line 3: expected '<1|0> <file a> <file b>' (VoxCeleb form)")):
        read_trials(tmp_path / "u.txt")


def test_both_forms_score_the_same_through_speaker_eval(tmp_path, capsys):
    """A VoxCeleb1-style tree (id/video/utt.wav) scored from either list form, as distributed."""
    import json

    import numpy as np

    from facevox.audio.io import save_wav
    from facevox.cli import main

    rng = np.random.default_rng(0)
    for name in ("id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav", "id10300/ize_eiCFEg0/00003.wav"):
        (tmp_path / "wav" / name).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(16000) / 16000
        save_wav(tmp_path / "wav" / name, (0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
                                           + 0.05 * rng.standard_normal(16000)).astype(np.float32))
    (tmp_path / "vox.txt").write_text(VOX)
    (tmp_path / "kaldi.txt").write_text(KALDI)
    metrics = {}
    for form in ("vox", "kaldi"):
        code = main(["speaker", "eval", str(tmp_path / f"{form}.txt"), "--audio-root", str(tmp_path / "wav"),
                     "--backend", "resemblyzer", "--no-cache", "--workers", "0", "--out", str(tmp_path / form)])
        assert code == 0, capsys.readouterr().err
        metrics[form] = json.loads((tmp_path / form / "metrics.json").read_text())
    assert metrics["vox"]["eer"] == metrics["kaldi"]["eer"] and metrics["vox"]["n_trials"] == 2
    assert (tmp_path / "vox" / "scores.txt").read_text() == (tmp_path / "kaldi" / "scores.txt").read_text()
