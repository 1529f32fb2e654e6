"""Published-model verbs: download-robustbench (the one verb that needs the internet) and
import-checkpoint (offline), run by the rules of workflow/rules/published.smk."""

from __future__ import annotations

from pathlib import Path

from ..cli import block_json, setting, verb
from ..published_formats import ARCHS, FORMATS

ZOO_DATASETS, ZOO_THREATS = ("cifar10", "cifar100", "imagenet"), ("L2", "Linf", "corruptions")


@verb("download-robustbench", "download a RobustBench zoo entry's file once (resumable) and its sidecar (sha256, URL)")
def download_robustbench(a):
    from ..zoo import fetch

    fetch(a.name, a.dataset, a.threat_model, a.out, a.sidecar, from_file=a.from_file,
          log=lambda line: print(line, flush=True))


download_robustbench.flags = lambda p: (
    p.add_argument("--name", required=True, help="the entry's name in robustbench's model zoo, e.g. Standard"),
    p.add_argument("--dataset", choices=ZOO_DATASETS, required=True, help="the zoo's track: dataset"),
    p.add_argument("--threat-model", choices=ZOO_THREATS, required=True, help="the zoo's track: threat model"),
    p.add_argument("--out", type=Path, required=True,
                   help="the file to write (robustbench_cache/<dataset>/<threat>/<name>.pt); <out>.part holds an "
                        "unfinished download, resumed by the next call"),
    p.add_argument("--sidecar", type=Path, required=True,
                   help="JSON to write: sha256, bytes, URL, robustbench version"),
    p.add_argument("--from-file", type=Path, default=None,
                   help="take this copy (downloaded by hand in a browser) instead of the network"),
)


@verb("import-checkpoint", "convert a published MadryLab / RobustBench / torchvision file into a robinterp checkpoint")
def import_checkpoint(a):
    from ..data import load_split
    from ..errors import RobinterpError

    split = load_split(a.classes) if a.classes else None
    classes = split.classes if split else None
    if a.robustbench_json is not None:
        file_only = {"--format": a.format, "--arch": a.arch, "--mean": a.mean, "--std": a.std,
                     "--num-classes": a.num_classes, "--sha256": a.sha256, "--class-subset": a.class_subset}
        given = [flag for flag, value in file_only.items() if value is not None]
        if given:
            raise RobinterpError(f"--robustbench-json names a zoo entry: drop {given} (robustbench builds its "
                                 "architecture and normalisation; sha256 and class_subset go in its block)")
        return _import_zoo(a, split)
    if not (a.format and a.arch):
        raise RobinterpError("give --format and --arch (a downloaded file) or --robustbench-json (a zoo entry)")
    from ..published import imagenet_index, import_published

    subset = None
    if a.class_subset == "wnids":
        if classes is None or a.imagenet_index is None:
            raise RobinterpError("--class-subset wnids needs --classes (the dataset split) and --imagenet-index")
        subset = classes
    import_published(a.format, a.arch, a.input, a.out, sha256=a.sha256, mean=a.mean, std=a.std,
                     num_classes=a.num_classes, width=a.width, classes=classes, class_subset=subset,
                     index_wnids=imagenet_index(a.imagenet_index) if subset else None,
                     log=lambda line: print(line, flush=True))


def _import_zoo(a, split):
    from ..published import imagenet_index
    from ..zoo import ZooCheckpoint
    from ..zoo_model import import_zoo

    block = ZooCheckpoint.build(a.robustbench_json, "checkpoint")
    import_zoo(block, a.input, a.out, sidecar=a.sidecar, classes=split.classes if split else None,
               image_shape=split.image_shape if split else None,
               index_wnids=imagenet_index(a.imagenet_index) if a.imagenet_index else None,
               log=lambda line: print(line, flush=True))


import_checkpoint.flags = lambda p: (
    p.add_argument("--format", choices=FORMATS, default=None, help="who published the file (with --arch)"),
    p.add_argument("--arch", choices=sorted({x for v in ARCHS.values() for x in v}), default=None,
                   help="registered architecture (docs/published_models.md: which file is which)"),
    block_json(p, "robustbench_checkpoint", "--robustbench-json",
               "instead of --format/--arch: the variant's checkpoint block naming a RobustBench zoo entry"),
    p.add_argument("--sidecar", type=Path, default=None,
                   help="with --robustbench-json: the sidecar download-robustbench wrote (its sha256 is checked)"),
    p.add_argument("--input", type=Path, required=True,
                   help="the downloaded file (.pt / .ckpt / .pth; a zoo entry's: "
                        "robustbench_cache/<dataset>/<threat>/<name>.pt)"),
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
