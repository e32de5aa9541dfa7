"""``facevox voice make-fakes``: real clips cut from a speaker corpus, one generated version of each per
generator, and the index (a split file, by speaker) that ``voice train`` and ``voice eval`` read.

Generators: ``griffinlim`` (the clip's log-mel inverted by Griffin-Lim), ``synth`` (facevox's
procedural synthesiser, one voice per speaker, the clip's duration), ``melgan`` (the clip through a
trained MelGAN vocoder, ``--vocoder``). Every fake is scaled to its real clip's RMS. The output
folder is written as a whole (nothing of it on error): ``real/<speaker>/<clip>.wav``,
``<generator>/<speaker>/<clip>.wav`` and ``index.csv``.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from facevox.audio.io import audio_info, list_audio_files, load_audio, save_wav
from facevox.errors import FacevoxError
from facevox.outdir import output_dir, prepare_output
from facevox.tasks.fakeface.data import LabelledImage, write_split
from facevox.tasks.voice.detector_config import GENERATORS, SAMPLE_RATE
from facevox.tasks.voice.detector_data import INDEX_NAME, check_generators, iter_clips

MIN_RMS = 1e-3  # a clip quieter than this (leading silence) is not used


def read_sexes(corpus: Path) -> dict[str, str]:
    """Speaker -> 'f'/'m' from LibriSpeech's SPEAKERS.TXT (in the corpus or its parent) or make_corpus's
    speakers.csv; empty when neither is there."""
    out: dict[str, str] = {}
    for f in (corpus / "SPEAKERS.TXT", corpus.parent / "SPEAKERS.TXT"):
        if f.is_file():
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                cells = [c.strip() for c in line.split("|")]
                if not line.startswith(";") and len(cells) >= 2 and cells[1].upper() in ("F", "M"):
                    out[cells[0]] = cells[1].lower()
            break
    csv = corpus / "speakers.csv"
    if not out and csv.is_file():
        for line in csv.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            cells = [c.strip() for c in line.split(",")]
            if len(cells) >= 2 and cells[1].lower() in ("f", "m"):
                out[cells[0]] = cells[1].lower()
    return out


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]", "_", text)


def plan_clips(corpus: Path, clip_seconds: float, max_clips: int, clips_per_file: int, seed: int,
               ) -> list[dict[str, Any]]:
    """The clips to cut: (file, start sample, speaker) from headers only; files shorter than one clip are
    left out; speakers take turns so that a small ``max_clips`` still covers many speakers."""
    if not corpus.is_dir():
        raise FacevoxError("corpus folder not found (give a folder of speaker sub-folders)", corpus)
    speakers = sorted(p for p in corpus.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not speakers:
        raise FacevoxError("no speaker sub-folders (expected CORPUS/<speaker>/<audio files>)", corpus)
    length = int(round(clip_seconds * SAMPLE_RATE))
    per_speaker = []
    for spk in speakers:
        files = list_audio_files(spk)
        order = np.random.default_rng((seed, _key(spk.name))).permutation(len(files))
        per_speaker.append((spk.name, [files[i] for i in order]))
    clips: list[dict[str, Any]] = []
    pos = [0] * len(per_speaker)
    while not max_clips or len(clips) < max_clips:
        added = False
        for k, (name, files) in enumerate(per_speaker):
            while pos[k] < len(files):
                f = files[pos[k]]
                pos[k] += 1
                rate, _, frames = audio_info(f)
                n = int(frames * SAMPLE_RATE // rate)
                starts = list(range(0, n - length + 1, length))[:clips_per_file]
                if starts:
                    clips += [{"file": str(f), "start": s, "speaker": name} for s in starts]
                    added = True
                    break
            if max_clips and len(clips) >= max_clips:
                break
        if not added:
            break
    if not clips:
        raise FacevoxError(f"no audio file of at least {clip_seconds:g} s", corpus)
    return clips[: max_clips or None]


def speaker_splits(speakers: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Speaker -> train/val/test: shuffled with ``seed``, cut by ``fractions`` (every split that has a
    share gets at least one speaker when there are enough)."""
    names = sorted(set(speakers))
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n = len(order)
    n_test = max(1, round(fractions[2] * n)) if fractions[2] > 0 and n >= 3 else round(fractions[2] * n)
    n_val = max(1, round(fractions[1] * n)) if fractions[1] > 0 and n >= 3 else round(fractions[1] * n)
    n_train = n - n_test - n_val
    return {s: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, s in enumerate(order)}


class FakeJobs(Dataset):
    """Clip ``i`` -> the rows it wrote: the real clip and one fake per generator, saved under ``root``."""

    def __init__(self, clips: list[dict[str, Any]], root: Path, generators: Sequence[str], length: int,
                 sexes: dict[str, str], vocoder: str | None, seed: int) -> None:
        self.clips, self.root, self.generators, self.length = clips, root, list(generators), length
        self.sexes, self.vocoder_source, self.seed = sexes, vocoder, seed
        self._vocoder: Any = None

    def __len__(self) -> int:
        return len(self.clips)

    def fake(self, gen: str, wave: np.ndarray, speaker: str, source: str) -> np.ndarray:
        if gen == "griffinlim":
            from facevox.audio.griffin_lim import resynthesise

            return resynthesise(torch.from_numpy(wave)).numpy()
        if gen == "synth":
            from facevox.audio.synth import Voice, synthesize

            sex = self.sexes.get(speaker) or None
            voice = Voice.random(np.random.default_rng((self.seed, _key(speaker), 0)), sex=sex)
            return synthesize(voice, np.random.default_rng((self.seed, _key(speaker), 1, _key(source))),
                              len(wave) / SAMPLE_RATE, SAMPLE_RATE)[: len(wave)]
        if self._vocoder is None:
            from facevox.tasks.voice.vocode import load_vocoder

            self._vocoder = load_vocoder(self.vocoder_source, device="cpu")
        return self._vocoder.resynthesise(wave)

    def __getitem__(self, i: int) -> list[tuple[str, str, str, str]]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small FFTs: more threads only contend (40x slower on a busy 2-core machine)
        try:
            return self._write(self.clips[i])
        finally:
            torch.set_num_threads(threads)

    def _write(self, c: dict[str, Any]) -> list[tuple[str, str, str, str]]:
        wave = load_audio(c["file"], SAMPLE_RATE)[c["start"] : c["start"] + self.length]
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
        if len(wave) < self.length or rms < MIN_RMS:
            return []
        speaker = c["speaker"]
        source = f"{Path(c['file']).stem}@{c['start'] / SAMPLE_RATE:g}"
        name = f"{_safe(speaker)}/{_safe(Path(c['file']).stem)}_{c['start'] // SAMPLE_RATE:04d}.wav"
        rows = [("real", name, speaker, source)]
        save_wav(self.root / "real" / name, wave)
        for gen in self.generators:
            fake = np.asarray(self.fake(gen, wave, speaker, source), dtype=np.float32)
            fake_rms = float(np.sqrt(np.mean(fake.astype(np.float64) ** 2)))
            if fake_rms > 0:
                fake = fake * (rms / fake_rms)
            save_wav(self.root / gen / name, fake)
            rows.append((gen, name, speaker, source))
        return rows


def make_fakes(corpus: str | Path, out: str | Path, *, generators: Sequence[str] = ("griffinlim", "synth"),
               vocoder: str | None = None, clip_seconds: float = 4.0, max_clips: int = 0, clips_per_file: int = 1,
               test_corpus: str | Path | None = None, fractions: Sequence[float] = (0.7, 0.1, 0.2),
               seed: int = 0, workers: int = 2, progress: bool = True) -> dict[str, Any]:
    """Write OUT/real, OUT/<generator> and OUT/index.csv; returns counts per split and generator.

    With ``test_corpus`` its speakers are the test split and CORPUS's are split into train and val only.
    """
    from tqdm import tqdm

    generators = check_generators(generators, "--generators")
    if not generators:
        raise FacevoxError("give at least one generator", "--generators")
    if "melgan" in generators and not vocoder:
        raise FacevoxError("the melgan generator needs a trained vocoder (--vocoder MODEL_FOLDER)", "--generators")
    if vocoder and "melgan" not in generators:
        raise FacevoxError("a vocoder is used by the melgan generator only; add melgan to --generators", "--vocoder")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise FacevoxError(f"need three non-negative fractions summing to 1, got {list(fractions)}", "--split")
    if vocoder:  # a bad folder fails now, before any clip is cut
        from facevox.tasks.voice.vocode import load_vocoder

        load_vocoder(vocoder, device="cpu")
    prepare_output(out)
    corpus = Path(corpus)
    clips = plan_clips(corpus, clip_seconds, max_clips, clips_per_file, seed)
    sexes = read_sexes(corpus)
    if test_corpus is not None:
        tr, va = fractions[0], fractions[1]
        split_of = speaker_splits([c["speaker"] for c in clips], (tr / (tr + va or 1), va / (tr + va or 1), 0), seed)
        test_clips = plan_clips(Path(test_corpus), clip_seconds, max_clips, clips_per_file, seed)
        clash = {c["speaker"] for c in test_clips} & set(split_of)
        if clash:
            raise FacevoxError(f"speaker '{sorted(clash)[0]}' is in both corpora; test speakers must be held out",
                               test_corpus)
        split_of.update({c["speaker"]: "test" for c in test_clips})
        sexes = {**sexes, **read_sexes(Path(test_corpus))}
        clips += test_clips
    else:
        split_of = speaker_splits([c["speaker"] for c in clips], fractions, seed)
    length = int(round(clip_seconds * SAMPLE_RATE))
    rows: list[tuple[str, str, str, str]] = []
    with output_dir(out, "voice make-fakes") as root:
        jobs = FakeJobs(clips, root, generators, length, sexes, vocoder, seed)
        # a bar on a terminal only (None): a log keeps the one error line
        with tqdm(total=len(clips), desc=f"make-fakes ({', '.join(generators)})", unit="clip",
                  disable=None if progress else True, file=sys.stderr) as bar:
            for batch in iter_clips(jobs, workers, batch=1):
                for clip_rows in batch:
                    rows += clip_rows
                bar.update(len(batch))
        if not rows:
            raise FacevoxError("every clip was silent", corpus)
        items = [LabelledImage(root / gen / name, int(gen != "real"),
                               {"generator": gen, "speaker": spk, "source": src, "sex": sexes.get(spk, "")})
                 for gen, name, spk, src in rows]
        write_split(root / INDEX_NAME, items, [split_of[it.groups["speaker"]] for it in items])
    counts: dict[str, Any] = {}
    for gen, _, spk, _ in rows:
        counts.setdefault(split_of[spk], {}).setdefault(gen, 0)
        counts[split_of[spk]][gen] += 1
    return {"index": Path(out) / INDEX_NAME, "clips": sum(1 for r in rows if r[0] == "real"), "counts": counts,
            "speakers": {s: sum(1 for v in split_of.values() if v == s) for s in ("train", "val", "test")}}


__all__ = ["GENERATORS", "make_fakes"]
