"""`robinterp <verb>`: the command line Snakemake rules call. Each verb parses its flags, calls
the library, writes exactly its declared outputs, and nothing else.

Every input and output is an explicit path flag. Structured settings travel as JSON strings
(`--config-json`, `--attack-json`) resolved from config.yaml by the workflow. Errors in input
print `error: <what and how to fix>` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import RobinterpError

VERBS = {}


def verb(name: str, help: str):
    """Register `fn(args)` as a verb; `fn.flags(parser)` declares its flags."""
    def wrap(fn):
        VERBS[name] = (fn, help)
        return fn
    return wrap


def json_arg(text: str):
    """argparse type for the --*-json flags."""
    try:
        return json.loads(text) if text not in (None, "", "null") else None
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    from . import commands  # noqa: F401  (imports every module in commands/, registering its verbs)

    parser = argparse.ArgumentParser(prog="robinterp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"robinterp {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    for name, (fn, help_) in VERBS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        fn.flags(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except RobinterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
