"""The ``facevox`` command: one sub-command group per task, each command a thin library call.

User errors (:class:`~facevox.errors.FacevoxError`) print as one line on stderr and exit with
status 2, as do argument errors; nothing is half-written because every writer is atomic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from facevox.errors import FacevoxError
from facevox.fileio import check_output_path

Handler = Callable[[argparse.Namespace], int | None]

TASK_GROUPS = {
    "speaker": "speaker verification: train, evaluate and compare speaker embedding models",
    "fakeface": "detection of GAN-generated faces, with saliency maps",
    "face": "face verification with hyperspherical margin losses",
    "invert": "GAN inversion by optimisation, a trained encoder, or both",
    "voice": "synthetic voices: a MelGAN vocoder, a generated-speech detector, a waveform GAN",
    "data": "training data at scale: tar shards that every train command streams",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like every other user error
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _command(sub: argparse._SubParsersAction, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    parser.set_defaults(handler=handler)
    return parser


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the recipe, e.g. --set train.lr=3e-4 (repeatable)",
    )


# --------------------------------------------------------------------------------------------
# general commands


def _cmd_list(args: argparse.Namespace) -> None:
    from facevox.registry import REGISTRIES

    kinds = [args.kind] if args.kind else [*REGISTRIES, "recipes"]
    for kind in kinds:
        if kind == "recipes":
            from facevox.recipes import describe_recipe, list_recipes

            names = list_recipes(args.pattern)
            print(f"recipes ({len(names)}):")
            for name in names:
                print(f"  {name:<32} {describe_recipe(name)}")
            continue
        registry = REGISTRIES[kind]
        names = registry.names(args.pattern)
        print(f"{kind} ({len(names)}):")
        for name in names:
            print(f"  {name:<22} {registry.describe(name)}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from facevox.demo import run_demo

    run_demo(Path(args.out), recipe=args.recipe, overrides=args.overrides)


def _cmd_eval_scores(args: argparse.Namespace) -> None:
    from facevox.report import verification_report
    from facevox.scores import read_score_file

    scores, labels = read_score_file(Path(args.scores))
    metrics = verification_report(scores, labels, Path(args.out), title=f"Scores: {Path(args.scores).name}")
    print(
        f"EER {100 * metrics['eer']:.2f}%  minDCF(0.01) {metrics['min_dcf_0.01']:.4f}  "
        f"trials {metrics['n_target']} target / {metrics['n_nontarget']} non-target"
    )
    print(f"report: {Path(args.out) / 'report.html'}")


def _cmd_export(args: argparse.Namespace) -> None:
    from facevox.export import export_model

    export_model(args.model, args.out, args.format)


def _planned(group: str, commands: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        print(f"facevox {group}: no commands yet (planned: {commands})", file=sys.stderr)
        return 2

    return handler


# --------------------------------------------------------------------------------------------
# the parser


def build_parser() -> argparse.ArgumentParser:
    from facevox import __version__

    parser = _Parser(
        prog="facevox",
        description="Deep learning on faces and voices: verification, GAN-face detection, "
        "GAN inversion, explanations and audits.",
    )
    parser.add_argument("--version", action="version", version=f"facevox {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _command(sub, "list", _cmd_list, "list registered models, losses, explainers, attacks and built-in recipes")
    p.add_argument("kind", nargs="?", choices=["models", "losses", "explainers", "attacks", "recipes"])
    p.add_argument("--pattern", help="glob filter, e.g. 'resnet*'")

    p = _command(sub, "demo", _cmd_demo, "the main job on built-in data: train, evaluate, report")
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--recipe", default=None,
                   help="YAML recipe file or built-in name, e.g. cosface (default: built-in settings)")
    _add_set(p)

    p = _command(sub, "eval-scores", _cmd_eval_scores, "metrics and report for a file of scored trials")
    p.add_argument("scores", help="text file: 'score label' or 'label score' per line (label 1/0 or target/nontarget)")
    p.add_argument("--out", default="runs/eval-scores", help="output folder")

    p = _command(sub, "export", _cmd_export, "export a speaker, face or fakeface model folder to ONNX or TorchScript")
    p.add_argument("model", help="model folder")
    p.add_argument("--format", default="onnx", help="onnx (default; run by onnxruntime) or torchscript")
    p.add_argument("--out", required=True, help="file to write; its sidecar OUT.json says how it was exported")
    p.set_defaults(out_is_file=True)

    planned: dict[str, str] = {}
    for group, help in TASK_GROUPS.items():
        g = sub.add_parser(group, help=help, description=help)
        adder = _task_commands(group)
        if adder is None:
            g.set_defaults(handler=_planned(group, planned[group]))
        else:
            g.set_defaults(handler=lambda args, g=g: g.print_help() or 2)
            adder(g.add_subparsers(title="commands", metavar="COMMAND"), _add_set)
    return parser


def _task_commands(group: str) -> Callable | None:
    if group == "speaker":
        from facevox.tasks.speaker.commands import add_commands

        return add_commands
    if group == "fakeface":
        from facevox.tasks.fakeface.commands import add_commands as add_fakeface

        return add_fakeface
    if group == "face":
        from facevox.tasks.face.commands import add_commands as add_face

        return add_face
    if group == "invert":
        from facevox.tasks.invert.commands import add_commands as add_invert

        return add_invert
    if group == "voice":
        from facevox.tasks.voice.commands import add_commands as add_voice

        return add_voice
    if group == "data":
        from facevox.datasets.commands import add_commands as add_data

        return add_data
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facevox`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        out = getattr(args, "out", None)
        if out is not None:
            check_output_path(out, is_file=getattr(args, "out_is_file", False))
        status = handler(args)
    except FacevoxError as err:
        print(f"facevox: error: {_printable(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder, a file vanishing mid-run: say which, in one line
        print(f"facevox: error: {_printable(_os_error_line(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"facevox: {_printable(str(err)) or 'interrupted'}", file=sys.stderr)
        return 130
    return int(status or 0)


def _os_error_line(err: OSError) -> str:
    where = err.filename if err.filename is not None else None
    what = err.strerror or " ".join(str(err).split())
    if where is None:
        return what
    where = where.decode("utf-8", "backslashreplace") if isinstance(where, bytes) else str(where)
    return f"{where}: {what}"


def _printable(text: str) -> str:
    """One line that any terminal encoding can print (file names may hold undecodable bytes)."""
    text = " ".join(text.split())
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")
