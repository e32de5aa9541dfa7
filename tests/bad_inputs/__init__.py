"""The bad-input corpus: every case is one bad input to one ``facevox`` command that must end in one
line on stderr naming the file or key at fault, exit status 2, no traceback and nothing written.

``CASES`` is the corpus (run by ``tests/test_bad_inputs.py`` and ``scripts/bad_inputs_table.py``),
:func:`bad_inputs.harness.run_case` runs one case in-process, :func:`bad_inputs.fixtures.prepared`
builds the tiny valid inputs the cases start from.
"""

from __future__ import annotations

from bad_inputs import (
    cases_attacks,
    cases_audio_invert,
    cases_face_protocols,
    cases_files,
    cases_models,
    cases_outputs,
    cases_settings,
    cases_vocoder,
    cases_voice,
)
from bad_inputs.harness import Case

CASES: list[Case] = [*cases_settings.CASES, *cases_files.CASES, *cases_models.CASES,
                     *cases_face_protocols.CASES, *cases_outputs.CASES, *cases_attacks.CASES,
                     *cases_audio_invert.CASES, *cases_voice.CASES, *cases_vocoder.CASES]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), sorted({i for i in _ids if _ids.count(i) > 1})
