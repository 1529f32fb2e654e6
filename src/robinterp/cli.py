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


# The verbs in pipeline order, by workflow stage (workflow/rules/<stage>.smk); `--help` lists them so.
STAGES = {
    "data": ["prepare-data", "build-small-imagenet"],
    "train": ["train", "import-checkpoint"],
    "evaluate": ["evaluate", "accuracy-table"],
    "analyses": ["ig", "shap", "class-generation", "inversion", "feature-vis"],
    "figures": ["plot-attributions", "plot-class-generation", "plot-inversion", "plot-feature-vis"],
    "metrics": ["install-fid-weights", "inception-features", "fid", "fid-table", "inversion-distance",
                "inversion-table", "interpretability-metrics", "interpretability-table",
                "parameter-randomisation", "randomisation-plot", "robustness-curve", "summary"],
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
    "--reference-json": "the dataset's `reference:` block (the paper's numbers) as JSON",
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
    stages = "\n".join(f"  {stage:<10} {', '.join(verbs)}" for stage, verbs in STAGES.items())
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
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except RobinterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
