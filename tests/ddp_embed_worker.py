"""Run by tests/test_verification_ddp.py under torchrun: each rank embeds its slice into one store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from facevox.verification import EmbeddingStore, embed_paths

if __name__ == "__main__":
    out = Path(sys.argv[1])
    files = sorted((out / "files").iterdir())
    rank = int(os.environ["RANK"])
    mine = []

    def extract(paths, sink):
        for i, raw in enumerate(paths):
            mine.append(os.fsdecode(raw))
            v = np.array([os.path.getsize(os.fsdecode(raw)), 1.0], np.float32)
            sink(i, v / np.linalg.norm(v))
        return []

    emb, ok, _ = embed_paths(files, extract, EmbeddingStore.open(out / "store", "fp"))
    (out / f"rank{rank}.json").write_text(json.dumps({"embedded": mine, "ok": bool(ok.all()),
                                                      "emb": emb.tolist()}))
