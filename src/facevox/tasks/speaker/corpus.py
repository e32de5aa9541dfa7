"""Speaker corpora and trial lists.

A corpus is a folder per speaker (``<root>/<speaker>/**/*.wav|flac|ogg|mp3``; VoxCeleb's
``id/video/utt.wav`` fits) or a CSV manifest with columns ``path,speaker`` (paths relative to
the manifest). Trial lists use the VoxCeleb format, one trial per line: ``1 a.wav b.wav``
(1 = same speaker, 0 = different), paths relative to an audio root.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facevox.audio.io import AUDIO_EXTENSIONS, list_audio_files
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text
from facevox.textfile import read_text


@dataclass(frozen=True)
class Utterance:
    path: Path  # absolute or relative to the working directory
    speaker: str

    def key(self, root: Path) -> str:
        """The path as written in trial lists: relative to ``root`` when it lies under it."""
        try:
            return self.path.relative_to(root).as_posix()
        except ValueError:
            return self.path.as_posix()


@dataclass
class Corpus:
    root: Path
    utterances: list[Utterance]

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def by_speaker(self) -> dict[str, list[Utterance]]:
        groups: dict[str, list[Utterance]] = defaultdict(list)
        for u in self.utterances:
            groups[u.speaker].append(u)
        return dict(sorted(groups.items()))

    def labels(self) -> tuple[np.ndarray, list[str]]:
        """Integer speaker labels (N,) in utterance order, and the speaker names they index."""
        names = self.speakers
        index = {s: i for i, s in enumerate(names)}
        return np.array([index[u.speaker] for u in self.utterances], dtype=np.int64), names


def read_corpus(source: str | Path) -> Corpus:
    """A corpus from a folder per speaker or from a CSV manifest (``path,speaker``)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _read_manifest(source)
    if not source.exists():
        raise FacevoxError("corpus folder or manifest not found", source)
    files = list_audio_files(source)
    utts = []
    for f in files:
        rel = f.relative_to(source)
        if len(rel.parts) < 2:
            raise FacevoxError(
                f"audio file directly under the corpus root ({rel}); expected <root>/<speaker>/...", source
            )
        utts.append(Utterance(f, rel.parts[0]))
    return Corpus(source, utts)


def _read_manifest(path: Path) -> Corpus:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = {"path", "speaker"} - set(reader.fieldnames or [])
    if missing:
        raise FacevoxError(f"manifest needs columns path,speaker (missing {', '.join(sorted(missing))})", path)
    rows = list(reader)
    if not rows:
        raise FacevoxError("manifest lists no files", path)
    utts = []
    for i, row in enumerate(rows, 2):
        name, speaker = (row["path"] or "").strip(), (row["speaker"] or "").strip()  # None: a short row
        f = Path(name)
        f = f if f.is_absolute() else path.parent / f
        if f.suffix.lower() not in AUDIO_EXTENSIONS:
            raise FacevoxError(f"line {i}: not an audio file extension: {name}", path)
        if not speaker:
            raise FacevoxError(f"line {i}: no speaker given for {name}", path)
        utts.append(Utterance(f, speaker))
    return Corpus(path.parent, utts)


def read_metadata(path: str | Path, column: str) -> dict[str, str]:
    """speaker -> value of ``column`` from a CSV (``speaker,<column>``) or LibriSpeech's SPEAKERS.TXT."""
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("metadata file not found", path)
    text = read_text(path)
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "speaker" not in rows[0] or column not in rows[0]:
            raise FacevoxError(f"metadata CSV needs columns speaker,{column}", path)
        return {r["speaker"].strip(): r[column].strip() for r in rows}
    # LibriSpeech SPEAKERS.TXT: "ID | SEX | SUBSET | MINUTES | NAME", comments start with ';'
    out = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if line.startswith(";") or len(parts) < 2:
            continue
        out[parts[0]] = parts[1].lower()
    if not out:
        raise FacevoxError("no speaker metadata found (expected CSV or LibriSpeech SPEAKERS.TXT)", path)
    return out


# --------------------------------------------------------------------------------------------
# trials


@dataclass(frozen=True)
class Trial:
    label: int  # 1 same speaker, 0 different
    a: str
    b: str


def read_trials(path: str | Path) -> list[Trial]:
    """A trial list in VoxCeleb's form, ``label a b`` per line (label 1/0, as VoxCeleb1-O/E/H and
    their cleaned lists are distributed), or Kaldi/WeSpeaker's, ``a b target|nontarget``.

    The first trial line decides the form; a line of the other form is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FacevoxError("trial list not found", path)
    trials = []
    words = {"1": 1, "0": 0, "target": 1, "nontarget": 0}
    kaldi: bool | None = None
    for i, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        first, last = (parts[0].lower(), parts[-1].lower()) if len(parts) == 3 else ("", "")
        if kaldi is None and len(parts) == 3:
            kaldi = first not in words and last in ("target", "nontarget")
        if kaldi and (len(parts) != 3 or last not in ("target", "nontarget") or first in words):
            raise FacevoxError(f"line {i}: expected '<file a> <file b> <target|nontarget>' (Kaldi form, as the "
                               f"first trial line), got {line.strip()!r}", path)
        if not kaldi and (len(parts) != 3 or first not in words):
            raise FacevoxError(f"line {i}: expected '<1|0> <file a> <file b>' (VoxCeleb form) or "
                               f"'<file a> <file b> <target|nontarget>' (Kaldi form), got {line.strip()!r}", path)
        if kaldi:
            trials.append(Trial(words[last], parts[0], parts[1]))
        else:
            trials.append(Trial(words[first], parts[1], parts[2]))
    if not trials:
        raise FacevoxError("trial list is empty", path)
    labels = {t.label for t in trials}
    if labels != {0, 1}:
        raise FacevoxError("trial list needs both target (1) and non-target (0) trials", path)
    return trials


def write_trials(path: str | Path, trials: Sequence[Trial]) -> Path:
    return atomic_write_text(path, "".join(f"{t.label} {t.a} {t.b}\n" for t in trials))


def make_trials(
    corpus: Corpus,
    *,
    mode: str = "all",
    n: int | None = None,
    target_fraction: float = 0.38,
    hard_negatives: str | None = None,
    metadata: Mapping[str, str] | None = None,
    embeddings: Mapping[str, np.ndarray] | None = None,
    nearest: int = 3,
    seed: int = 0,
) -> list[Trial]:
    """Trials over a corpus.

    ``mode="all"``: every unordered pair of utterances. ``mode="sampled"``: ``n`` trials of
    which ``target_fraction`` are same-speaker (the seed paper trained on 62/38
    different/same). Hard negatives for sampled non-target trials: ``"sex"`` pairs speakers of
    the same sex (``metadata``: speaker -> sex), ``"nearest"`` pairs each speaker with one of its
    ``nearest`` most similar speakers by mean embedding (``embeddings``: speaker -> mean
    embedding).
    """
    groups = corpus.by_speaker()
    root = corpus.root
    if len(groups) < 2:
        raise FacevoxError(f"need at least 2 speakers to make trials, found {len(groups)}", root)
    if mode == "all":
        utts = corpus.utterances
        return [
            Trial(int(x.speaker == y.speaker), x.key(root), y.key(root)) for x, y in itertools.combinations(utts, 2)
        ]
    if mode != "sampled":
        raise FacevoxError(f"unknown trial mode '{mode}'; valid: all, sampled", "--mode")
    if n is None or n < 2:
        raise FacevoxError("sampled trials need --n (number of trials) >= 2", "--n")
    if not 0.0 < target_fraction < 1.0:
        raise FacevoxError(f"target fraction must be in (0, 1), got {target_fraction}", "--target-fraction")
    multi = [s for s, us in groups.items() if len(us) >= 2]
    if not multi:
        raise FacevoxError("no speaker has 2 utterances, so no target trial can be made", root)
    rng = np.random.default_rng(seed)
    speakers = list(groups)
    partners = _negative_partners(speakers, hard_negatives, metadata, embeddings, nearest)
    n_target = round(n * target_fraction)
    trials = []
    for _ in range(n_target):
        s = multi[rng.integers(len(multi))]
        i, j = rng.choice(len(groups[s]), size=2, replace=False)
        trials.append(Trial(1, groups[s][i].key(root), groups[s][j].key(root)))
    for _ in range(n - n_target):
        s = speakers[rng.integers(len(speakers))]
        choices = partners[s]
        t = choices[rng.integers(len(choices))]
        x, y = groups[s][rng.integers(len(groups[s]))], groups[t][rng.integers(len(groups[t]))]
        trials.append(Trial(0, x.key(root), y.key(root)))
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


def _negative_partners(
    speakers: list[str],
    hard: str | None,
    metadata: Mapping[str, str] | None,
    embeddings: Mapping[str, np.ndarray] | None,
    nearest: int,
) -> dict[str, list[str]]:
    everyone = {s: [t for t in speakers if t != s] for s in speakers}
    if hard is None or hard == "none":
        return everyone
    if hard == "sex":
        if metadata is None:
            raise FacevoxError("hard negatives by sex need a metadata file (speaker,sex)", "--metadata")
        missing = [s for s in speakers if s not in metadata]
        if missing:
            raise FacevoxError(f"speaker '{missing[0]}' has no entry in the metadata file", "--metadata")
        same = {s: [t for t in everyone[s] if metadata[t] == metadata[s]] for s in speakers}
        return {s: same[s] or everyone[s] for s in speakers}  # a speaker alone in its group: any
    if hard == "nearest":
        if embeddings is None:
            raise FacevoxError("hard negatives by nearest speaker need a model to embed with", "--model")
        names = list(speakers)
        mat = np.stack([embeddings[s] / np.linalg.norm(embeddings[s]) for s in names])
        sim = mat @ mat.T
        np.fill_diagonal(sim, -np.inf)
        k = max(1, min(nearest, len(names) - 1))
        return {s: [names[j] for j in np.argsort(-sim[i])[:k]] for i, s in enumerate(names)}
    raise FacevoxError(f"unknown hard-negative mode '{hard}'; valid: none, sex, nearest", "--hard-negatives")
