"""`robinterp <verb>`: the command line Snakemake rules call. Each verb parses its flags, calls
the library, writes exactly its declared outputs, and nothing else.

Every input and output is an explicit path flag. A verb that reads config sections gets them as
one settings object (robinterp.settings): `--settings` (a JSON object, or a .json/.yaml file) and
`--set SECTION.KEY=VALUE` flags build it, and it is validated and filled from the schema once,
before the verb runs, so a verb run by hand gets the same checks as one the workflow runs.
Errors in input print `error: <what and how to fix>` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import RobinterpError
from .verbs import VERBS


def verb_settings(name: str) -> tuple[str, ...]:
    """The settings sections a verb reads (what the workflow hands it)."""
    from . import commands  # noqa: F401  (registers every verb)

    return VERBS[name][2]


def _settings_flags(p: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    from .settings import section_node

    described = "; ".join(f"{s}: {section_node(s).get('description', s).split(';')[0].strip()}" for s in sections)
    p.add_argument(
        "--settings",
        default=None,
        metavar="JSON|FILE",
        help=f"the job's settings: a JSON object, or a .json/.yaml file, with the sections {list(sections)} "
        f"(config keys and defaults: robinterp/config.schema.yaml; {described}); sections left out "
        "take their defaults".replace("%", "%%"),
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="one setting, over --settings (VALUE as YAML: 8, true, null, [1, 2]); repeatable",
    )


def read_settings(text: str | None, sets: list[str], sections: tuple[str, ...]) -> dict:
    """The settings object of --settings (JSON text or a file) with the --set overrides applied."""
    import yaml

    raw: dict = {}
    if text:
        if text.lstrip().startswith("{"):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as e:
                raise RobinterpError(f"--settings: not valid JSON ({e})") from None
        else:
            path = Path(text)
            if not path.is_file():
                raise RobinterpError(f"--settings {text}: no such file (give a JSON object or a .json/.yaml file)")
            raw = yaml.safe_load(path.read_text()) or {}  # YAML reads JSON too
        if not isinstance(raw, dict):
            raise RobinterpError('--settings: expected an object of sections, e.g. {"device": "cpu"}')
    for item in sets:
        key, sep, value = item.partition("=")
        section = max((s for s in sections if key == s or key.startswith(s + ".")), key=len, default=None)
        if not sep or section is None:
            raise RobinterpError(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {list(sections)}")
        if key == section:
            raw[section] = yaml.safe_load(value)
            continue
        *parents, leaf = key[len(section) + 1 :].split(".")
        target = raw.setdefault(section, {})
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(value)
    return raw


# The verbs in pipeline order, by workflow stage: stage X's rules are workflow/rules/X.smk and its
# verbs live in commands/X.py (tests/test_cli.py holds both to it). `--help` lists them so.
STAGES = {
    "data": ["download-data", "prepare-data"],
    "small_imagenet": ["build-small-imagenet"],
    "train": ["train"],
    "published": ["download-robustbench", "import-checkpoint"],
    "evaluate": ["evaluate", "accuracy-table"],
    "analyses": ["ig", "shap", "class-generation", "inversion", "feature-vis"],
    "figures": ["plot-attributions", "plot-class-generation", "plot-inversion", "plot-feature-vis"],
    "fid": ["install-fid-weights", "inception-features", "fid", "fid-table", "inversion-distance", "inversion-table"],
    "attribution_metrics": [
        "interpretability-metrics",
        "parameter-randomisation",
        "randomisation-plot",
        "interpretability-table",
    ],
    "summary": ["robustness-curve", "summary"],
}

# Flags that mean the same in every verb, documented once; a verb's own help text wins.
SHARED_HELP = {
    "--checkpoint": "model checkpoint (.pt) written by `train` or `import-checkpoint`",
    "--data": "packed split (folder or its manifest.json)",
    "--variant": "variant name, recorded in the outputs",
    "--dataset": "dataset name, for titles",
    "--inputs": "the per-variant JSON files to merge, one per variant",
    "--out": "output file",
    "--out-csv": "output table (.csv)",
    "--out-md": "output table (.md, with notes)",
    "--out-png": "output figure (.png)",
    "--out-pdf": "output figure (.pdf)",
    "--out-dir": "output folder",
}


def build_parser() -> argparse.ArgumentParser:
    from . import (
        __version__,
        commands,  # noqa: F401  (imports every module in commands/, registering its verbs)
    )

    order = [v for verbs in STAGES.values() for v in verbs]
    unplaced = sorted(set(VERBS) - set(order))
    if unplaced:
        raise RuntimeError(f"verbs {unplaced} are in no stage of cli.STAGES")
    stages = "\n".join(f"  {stage:<20} {', '.join(verbs)}" for stage, verbs in STAGES.items())
    parser = argparse.ArgumentParser(
        prog="robinterp",
        description=__doc__.split("\n\n")[0],
        epilog=f"verbs by workflow stage, in pipeline order:\n{stages}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"robinterp {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    for name in order:
        fn, help_, sections = VERBS[name]
        p = sub.add_parser(name, help=help_, description=help_)
        fn.flags(p)
        if sections:
            _settings_flags(p, sections)
        for action in p._actions:
            if action.option_strings and not action.help:
                action.help = SHARED_HELP.get(action.option_strings[0])
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # reads the schema's defaults
    except RobinterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        sections = VERBS[args.verb][2]
        if sections:
            from .settings import check_settings

            args.settings = check_settings(sections, read_settings(args.settings, args.set, sections), "settings")
        args.func(args)
    except RobinterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk outside the atomic writes (staging arrays, logs)
        from .storage import DISK_FULL_ERRNOS, no_space_message

        if e.errno not in DISK_FULL_ERRNOS:
            raise
        print(f"error: {no_space_message(e.filename or 'the output disk')}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
