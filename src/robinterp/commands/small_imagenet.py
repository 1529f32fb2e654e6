"""Small ImageNet 150 verb: build-small-imagenet (run by the rule build_small_imagenet)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..verbs import verb


@verb(
    "build-small-imagenet",
    "build Small ImageNet 150 (train/val/test, packed) from an ILSVRC copy",
    settings=("source",),
)
def build_small_imagenet(a):
    from ..errors import RobinterpError
    from ..small_imagenet import BuildConfig, build

    source = a.settings["source"]
    if source["kind"] != "small_imagenet150":
        raise RobinterpError(
            f"source.kind {source['kind']!r}: build-small-imagenet builds kind small_imagenet150 "
            "(other sources: robinterp prepare-data)"
        )
    cfg = BuildConfig.from_block(source, "source")
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed job cleans up its staging too
    try:
        build(cfg, a.out_dir, workers=a.workers, log=lambda line: print(line, flush=True))
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"build-small-imagenet: wrote {a.out_dir}/{{train,val,test}}")


build_small_imagenet.flags = lambda p: (
    # how the job runs (the rule passes its threads), not a config setting: no rerun when it changes
    p.add_argument("--workers", type=int, default=1, help="decoding processes; 0 = every usable CPU core"),
    p.add_argument("--out-dir", type=Path, required=True, help="writes <out-dir>/{train,val,test}/"),
)
