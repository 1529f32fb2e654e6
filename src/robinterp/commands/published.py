"""Published-model verb: import-checkpoint (run by the rule import_checkpoint)."""

from __future__ import annotations

from pathlib import Path

from ..cli import setting, verb
from ..published_formats import ARCHS, FORMATS


@verb("import-checkpoint", "convert a published MadryLab / RobustBench / torchvision file into a robinterp checkpoint")
def import_checkpoint(a):
    from ..data import load_split
    from ..published import imagenet_index, import_published

    classes = load_split(a.classes).classes if a.classes else None
    subset = None
    if a.class_subset == "wnids":
        if classes is None or a.imagenet_index is None:
            from ..errors import RobinterpError

            raise RobinterpError("--class-subset wnids needs --classes (the dataset split) and --imagenet-index")
        subset = classes
    import_published(a.format, a.arch, a.input, a.out, sha256=a.sha256, mean=a.mean, std=a.std,
                     num_classes=a.num_classes, width=a.width, classes=classes, class_subset=subset,
                     index_wnids=imagenet_index(a.imagenet_index) if subset else None,
                     log=lambda line: print(line, flush=True))


import_checkpoint.flags = lambda p: (
    p.add_argument("--format", choices=FORMATS, required=True, help="who published the file"),
    p.add_argument("--arch", choices=sorted({x for v in ARCHS.values() for x in v}), required=True,
                   help="registered architecture (docs/published_models.md: which file is which)"),
    p.add_argument("--input", type=Path, required=True, help="the downloaded file (.pt / .ckpt / .pth)"),
    p.add_argument("--out", type=Path, required=True, help="robinterp checkpoint to write (.pt)"),
    p.add_argument("--num-classes", type=int, default=None, help="check the head has this many classes"),
    p.add_argument("--mean", type=float, nargs="+", default=None,
                   help="input normalisation, for files that do not hold it (RGB, [0, 1] pixels)"),
    p.add_argument("--std", type=float, nargs="+", default=None, help="input normalisation std where the file does not hold it (with --mean)"),
    p.add_argument("--sha256", default=None, help="refuse the file unless its sha256 is this"),
    setting(p, "--width", "checkpoint.width", "channel multiplier of the architecture (1 = published)", type=float),
    p.add_argument("--classes", type=Path, default=None,
                   help="dataset split (folder or manifest) whose classes the model predicts, in label order"),
    p.add_argument("--class-subset", choices=["wnids"], default=None,
                   help="keep only the logits of the --classes wnids (ImageNet model on Small ImageNet)"),
    p.add_argument("--imagenet-index", type=Path, default=None,
                   help="LOC_synset_mapping.txt or the ILSVRC train folder: the wnid of each ImageNet output"),
)
