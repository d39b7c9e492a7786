"""The ``ftkit`` command.

    ftkit doctor        versions, device, offline models and data, network
    ftkit models        the model catalogue
    ftkit datasets      the dataset catalogue
"""
from __future__ import annotations

import argparse
import sys


def _doctor(args) -> int:
    from .doctor import doctor

    doctor(network=not args.offline)
    return 0


def _models(args) -> int:
    from .models import list_models

    print(list_models(task=args.task))
    return 0


def _datasets(args) -> int:
    from .datasets import list_datasets

    print(list_datasets())
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
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
