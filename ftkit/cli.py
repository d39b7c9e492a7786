"""The ``ftkit`` command.

    ftkit doctor        versions, device, offline models and data, network
    ftkit models        the model catalogue
    ftkit datasets      the dataset catalogue
    ftkit pretrain NAME pre-train a zoo model (glyph-resnet, glyph-vit, bbc-gpt) by its recipe
    ftkit lessons [DIR] copy the lessons to a working folder and open them in JupyterLab
"""
from __future__ import annotations

import argparse
import sys

from .course import lessons_cli
from .course.doctor import doctor
from .data.catalogue import list_datasets
from .models.catalogue import list_models
from .models.zoo import ZOO_NAMES
from .zoo.recipes import pretrain


def _doctor(args) -> int:
    doctor(network=not args.offline)
    return 0


def _models(args) -> int:
    print(list_models(task=args.task))
    return 0


def _datasets(args) -> int:
    print(list_datasets())
    return 0


def _pretrain(args) -> int:
    overrides = {} if args.seed is None else {"seed": args.seed}
    card = pretrain(args.name, args.out, quick=args.quick, device=args.device, **overrides)
    print(f"wrote {', '.join(card['files'])} and {args.name}.json to {args.out or 'the package zoo folder'} "
          f"in {card['wall_time_s']['total']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftkit", description="Fine-tuning teaching kit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("doctor", help="check the installation, the device and the network")
    p.add_argument("--offline", action="store_true", help="skip the network check")
    p.set_defaults(run=_doctor)
    p = sub.add_parser("models", help="list the model catalogue")
    p.add_argument("--task", default=None, help="only models for this task, e.g. causal-lm")
    p.set_defaults(run=_models)
    p = sub.add_parser("datasets", help="list the dataset catalogue")
    p.set_defaults(run=_datasets)
    p = sub.add_parser("pretrain", help="pre-train a zoo model by its recipe (writes weights and a JSON card)")
    p.add_argument("name", choices=ZOO_NAMES, help="the zoo model")
    p.add_argument("--out", default=None, help="folder to write to (default: the package's zoo folder)")
    p.add_argument("--quick", action="store_true", help="a tiny configuration, to check the recipe runs")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's, which made the shipped model)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if present)")
    p.set_defaults(run=_pretrain)
    lessons_cli.add_parser(sub)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not hasattr(args, "passed_on"):  # only `ftkit lessons` passes options on (to JupyterLab)
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.passed_on = unknown
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
