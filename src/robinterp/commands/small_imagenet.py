"""Small ImageNet 150 verb: build-small-imagenet (run by the rule build_small_imagenet)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from ..cli import setting, verb


@verb("build-small-imagenet", "build Small ImageNet 150 (train/val/test, packed) from an ILSVRC copy")
def build_small_imagenet(a):
    from ..small_imagenet import BuildConfig, build

    cfg = BuildConfig(
        train_dir=str(a.train_dir), val_dir=str(a.val_dir),
        val_labels=a.val_labels and str(a.val_labels), imagenetv2_dir=a.imagenetv2_dir and str(a.imagenetv2_dir),
        synset_mapping=a.synset_mapping and str(a.synset_mapping), class_list=a.class_list and str(a.class_list),
        classes=a.classes, train_per_class=a.train_per_class, val_per_class=a.val_per_class,
        test_per_class=a.test_per_class, imagenetv2_per_class=a.imagenetv2_per_class,
        image_size=a.image_size, validation=a.validation, seed=a.seed)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed job cleans up its staging too
    try:
        build(cfg, a.out_dir, workers=a.workers, log=lambda line: print(line, flush=True))
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"build-small-imagenet: wrote {a.out_dir}/{{train,val,test}}")


build_small_imagenet.flags = lambda p: (
    p.add_argument("--train-dir", type=Path, required=True, help="ILSVRC train folder: <wnid>/<image>.JPEG"),
    p.add_argument("--val-dir", type=Path, required=True, help="ILSVRC validation folder (per-class or flat)"),
    p.add_argument("--val-labels", type=Path, default=None, help="LOC_val_solution.csv (flat validation layout)"),
    p.add_argument("--imagenetv2-dir", type=Path, default=None, help="ImageNetV2 TopImages: <0-999>/<image>"),
    p.add_argument("--synset-mapping", type=Path, default=None, help="LOC_synset_mapping.txt (class names)"),
    p.add_argument("--class-list", type=Path, default=None, help="one wnid per line instead of a random draw"),
    setting(p, "--classes", "small_imagenet_source.classes", type=int, help="classes drawn at random"),
    setting(p, "--train-per-class", "small_imagenet_source.train_per_class", type=int, help="training images per class"),
    setting(p, "--val-per-class", "small_imagenet_source.val_per_class", type=int, help="held out of the train folder for model selection"),
    setting(p, "--test-per-class", "small_imagenet_source.test_per_class", type=int, help="ILSVRC validation images"),
    setting(p, "--imagenetv2-per-class", "small_imagenet_source.imagenetv2_per_class", type=int, help="ImageNetV2 TopImages per class added to test (0 = none)"),
    setting(p, "--image-size", "small_imagenet_source.image_size", type=int, help="shorter side resized to this, then centre crop (pixels)"),
    setting(p, "--validation", "small_imagenet_source.validation", choices=["train_holdout", "ilsvrc_val"],
            help="ilsvrc_val = the paper's protocol (val = the ILSVRC validation part of test)"),
    setting(p, "--seed", "small_imagenet_source.seed", "class draw and per-class image draw", type=int),
    p.add_argument("--workers", type=int, default=1, help="decoding processes; 0 = every usable CPU core"),
    p.add_argument("--out-dir", type=Path, required=True, help="writes <out-dir>/{train,val,test}/"),
)
