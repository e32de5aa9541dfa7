"""The identification protocol shared by speaker and face: enrolment split, rank-k, DIR@FAR, skipped files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.verification.identification import identification_protocol
from facevox.verification.verifier import Verifier


class TableVerifier(Verifier):
    """Embeddings looked up by file name; files named 'bad*' are not read."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_paths(self, paths):
        ok = np.array([not Path(p).name.startswith("bad") for p in paths])
        emb = np.stack([self.table.get(Path(p).name, np.zeros(2)) for p in paths])
        return emb, ok


def _groups():
    # 4 identities on the unit circle; ann and bob are enrolled (first half, sorted), cid and dan are not
    angle = {"ann": 0.0, "bob": 1.6, "cid": 3.2, "dan": 4.7}
    table, groups = {}, {}
    for n, a in angle.items():
        files = []
        for i in range(3):
            name = f"{n}{i}"
            table[name] = np.array([np.cos(a + 0.05 * i), np.sin(a + 0.05 * i)])
            files.append(Path(name))
        groups[n] = files
    table["bob2"] = np.array([1.0, 0.0])  # a bob probe that looks like ann: one closed-set error
    return table, groups


def test_known_answer():
    table, groups = _groups()
    out = identification_protocol(TableVerifier(table), groups, "here", ranks=(1, 2), fars=(0.0,))
    assert out["gallery_identities"] == 2 and out["probes"] == 4 + 6 and out["mated_probes"] == 4
    assert out["rank1"] == pytest.approx(3 / 4) and out["rank2"] == 1.0
    # no false alarm allowed: the threshold sits above the best non-mated score (dan0 is nearest to ann)
    assert 0.0 <= out["dir"]["0.0"] <= 3 / 4


def test_skipped_files_are_left_out():
    table, groups = _groups()
    groups["cid"] = [Path("bad_c0"), *groups["cid"]]
    out = identification_protocol(TableVerifier(table), groups, "here", ranks=(1,))
    assert out["probes"] == 10


def test_needs_enrolled_and_unenrolled_identities():
    table, groups = _groups()
    with pytest.raises(FacevoxError, match="here: identification needs enrolled identities"):
        identification_protocol(TableVerifier(table), {"ann": groups["ann"]}, "here")
