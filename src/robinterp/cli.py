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


def setting(p: argparse.ArgumentParser, flag: str, key: str, help: str = "", **kw) -> None:
    """A flag carrying one config key: its default is the schema's (the only place defaults are
    written), its help names the key, and a number below the key's schema minimum is refused
    (`--batch-size 0`, `--max-images -5`)."""
    from .config import default, section

    value = default(key)
    node = section(key)
    if "type" in kw and ("minimum" in node or "exclusiveMinimum" in node):
        kw["type"] = at_least(kw["type"], flag, key, node.get("minimum"), node.get("exclusiveMinimum"))
    help = help or SHARED_HELP.get(flag, "")
    shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
    p.add_argument(flag, default=value, help=f"{help}{'; ' if help else ''}config {key} (default {shown})".replace("%", "%%"),
                   **kw)


def at_least(convert, flag: str, key: str, minimum=None, exclusive=None):
    """argparse type: `convert(text)`; below the schema's minimum of config `key` it is a
    RobinterpError (one line, exit 2), which argparse lets through to `main`."""
    def parse(text: str):
        value = convert(text)
        if (minimum is not None and value < minimum) or (exclusive is not None and value <= exclusive):
            bound = f">= {minimum}" if minimum is not None else f"> {exclusive}"
            raise RobinterpError(f"{key.rsplit('.', 1)[-1]}: {text}; must be {bound} (flag {flag}, config {key})")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in "invalid int value" messages
    return parse


def block_json(p: argparse.ArgumentParser, key: str, flag: str = "--config-json", what: str = "") -> None:
    """A --*-json flag carrying one config block: keys left out take the schema's defaults."""
    from .config import properties

    keys = ", ".join(properties(key))
    p.add_argument(flag, type=json_arg, default=None,
                   help=f"{what or 'the config block ' + key} as JSON; keys: {keys} (workflow/schemas/config.schema.yaml, "
                        f"$defs {key}); keys left out take their defaults")


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
    "metrics": ["install-fid-weights", "inception-features", "fid", "fid-table", "inversion-distance",
                "inversion-table", "interpretability-metrics", "parameter-randomisation", "randomisation-plot",
                "interpretability-table", "robustness-curve", "summary"],
}

# Flags that mean the same in every verb, documented once; a verb's own help text wins.
SHARED_HELP = {
    "--checkpoint": "model checkpoint (.pt) written by `train` or `import-checkpoint`",
    "--data": "packed split (folder or its manifest.json)",
    "--variant": "variant name, recorded in the outputs",
    "--device": "auto | cpu | cuda (auto = CUDA when present); how the job runs, not what it computes",
    "--seed": "seed of every random draw of this verb",
    "--batch-size": "images per forward/backward pass (memory and speed only)",
    "--dataset": "dataset name, for titles",
    "--reference-json": "the dataset's reference block as JSON (the paper's numbers; $defs dataset.reference): keys are "
                        "variant names (and `real`, the real-data FID), values {clean_acc, adv_acc, fid, inversion_distance}",
    "--inputs": "the per-variant JSON files to merge, one per variant",
    "--out": "output file",
    "--out-csv": "output table (.csv)",
    "--out-md": "output table (.md, with notes)",
    "--out-png": "output figure (.png)",
    "--out-pdf": "output figure (.pdf)",
    "--out-dir": "output folder",
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    from . import commands  # noqa: F401  (imports every module in commands/, registering its verbs)

    order = [v for verbs in STAGES.values() for v in verbs]
    unplaced = sorted(set(VERBS) - set(order))
    if unplaced:
        raise RuntimeError(f"verbs {unplaced} are in no stage of cli.STAGES")
    stages = "\n".join(f"  {stage:<15} {', '.join(verbs)}" for stage, verbs in STAGES.items())
    parser = argparse.ArgumentParser(prog="robinterp", description=__doc__.split("\n\n")[0],
                                     epilog=f"verbs by workflow stage, in pipeline order:\n{stages}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"robinterp {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="<verb>")
    for name in order:
        fn, help_ = VERBS[name]
        p = sub.add_parser(name, help=help_, description=help_)
        fn.flags(p)
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
        args = parser.parse_args(argv)  # a number below its schema minimum is a RobinterpError here
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
