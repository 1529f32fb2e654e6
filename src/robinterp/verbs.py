"""The verb registry: `@verb(name, help, settings=...)` registers a command function, its help and
the config sections it reads. The modules of `commands/` register their verbs here when imported;
`cli.py` builds the parser from `VERBS` (so neither imports the other's importer: no cycle).
`named_paths` reads the `NAME=PATH` flags some verbs take; `table_flags` are every table verb's.
"""

from __future__ import annotations

from pathlib import Path

from .errors import RobinterpError

VERBS: dict = {}  # name -> (fn, help, settings sections)


def verb(name: str, help: str, settings: tuple[str, ...] = ()):
    """Register `fn(args)` as a verb; `fn.flags(parser)` declares its path flags, and `settings`
    the config sections it reads (robinterp.settings keys), which arrive as `args.settings`."""

    def wrap(fn):
        VERBS[name] = (fn, help, tuple(settings))
        return fn

    return wrap


def named_paths(items: list[str] | None, flag: str, name: str) -> list[tuple[str, Path]]:
    """`NAME=PATH` flag values as (name, path) pairs, in order (`--attributions ig=...`, `--tables d=...`);
    `name` says what NAME is in the error (METHOD, DATASET)."""
    out = []
    for item in items or []:
        key, sep, path = item.partition("=")
        if not sep or not key:
            raise RobinterpError(f"{flag} {item!r}: expected {name}=PATH")
        out.append((key, Path(path)))
    return out


def table_flags(p) -> None:
    """The flags of a table verb: per-variant JSON in, CSV and Markdown out."""
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="per-variant JSON results")
    p.add_argument("--dataset", default="")
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument(
        "--out-notes", type=Path, required=True, help="the table's title and notes (.json; summary reads them)"
    )
