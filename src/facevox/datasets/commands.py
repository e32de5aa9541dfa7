"""``facevox data ...``: ``shard`` writes tar shards of a training corpus (see :mod:`facevox.datasets.shards`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facevox.config import ranged_arg
from facevox.errors import FacevoxError


def _shard(args: argparse.Namespace) -> None:
    from facevox.datasets.shards import SHARD_INFO, TASKS, source_items, write_shards

    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not (out / SHARD_INFO).is_file():
        raise FacevoxError("exists and holds other files; shards are written to a new folder or replace earlier "
                           "shards", out)
    if args.task is not None and args.task not in TASKS:
        raise FacevoxError(f"unknown task '{args.task}'; valid: {', '.join(TASKS)}", "--task")
    items = source_items(args.source, args.task)
    info = write_shards(items, out, per_shard=args.per_shard, skip_bad=args.skip_bad, min_seconds=args.min_seconds,
                        workers=args.workers)
    splits = sorted({s["split"] for s in info["shards"] if s["split"]})
    print(f"data: {info['items']} {items.task} items of {len(info['classes'])} classes in {len(info['shards'])} "
          f"shard(s){' (' + ', '.join(splits) + ')' if splits else ''}: {out / 'shard.list'}"
          + (f"; skipped {len(info['skipped'])} bad file(s)" if info["skipped"] else ""))
    if args.json:
        print(json.dumps({k: info[k] for k in ("task", "items", "skipped")}))


def add_commands(sub: argparse._SubParsersAction, add_set) -> None:  # noqa: ANN001 - cli's helper
    """Register ``facevox data`` sub-commands."""
    help_ = ("write tar shards (webdataset layout) of a training corpus, with shard.list and shards.json; "
             "every train command takes the folder as its data")
    p = sub.add_parser("shard", help=help_, description=help_)
    p.set_defaults(handler=_shard)
    p.add_argument("source", help="corpus folder or CSV manifest; for fakeface also a split file (path,label,split)")
    p.add_argument("--out", required=True, help="folder for the shards, shard.list and shards.json")
    p.add_argument("--task", default=None, choices=["speaker", "fakeface", "face"],
                   help="what the data is for (default: guessed: audio -> speaker, real/ + fake/ or path,label -> "
                        "fakeface, a folder per identity of images -> face)")
    p.add_argument("--per-shard", type=ranged_arg(int, ge=1), default=1000, help="items per shard (default 1000)")
    p.add_argument("--min-seconds", type=ranged_arg(float, ge=0), default=0.5,
                   help="speaker: shorter files are bad (default 0.5, as data.min_seconds)")
    p.add_argument("--skip-bad", action="store_true", help="leave bad files out and list them, instead of stopping")
    p.add_argument("--workers", type=ranged_arg(int, ge=0), default=0,
                   help="processes that decode and check the files (default 0: this process)")
    p.add_argument("--json", action="store_true", help="also print task, item count and skipped files as JSON")
