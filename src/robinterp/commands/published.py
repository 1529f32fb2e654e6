"""Published-model verbs: download-robustbench (the one verb that needs the internet) and
import-checkpoint (offline), run by the rules of workflow/rules/published.smk."""

from __future__ import annotations

from pathlib import Path

from ..settings import node
from ..verbs import verb


@verb("download-robustbench", "download a RobustBench zoo entry's file once (resumable) and its sidecar (sha256, URL)")
def download_robustbench(a):
    from ..zoo import fetch

    fetch(
        a.name,
        a.dataset,
        a.threat_model,
        a.out,
        a.sidecar,
        from_file=a.from_file,
        log=lambda line: print(line, flush=True),
    )


download_robustbench.flags = lambda p: (
    p.add_argument("--name", required=True, help="the entry's name in robustbench's model zoo, e.g. Standard"),
    p.add_argument(
        "--dataset",
        choices=node("robustbench_checkpoint.dataset")["enum"],
        required=True,
        help="the zoo's track: dataset",
    ),
    p.add_argument(
        "--threat-model",
        choices=node("robustbench_checkpoint.threat_model")["enum"],
        required=True,
        help="the zoo's track: threat model",
    ),
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the file to write (robustbench_cache/<dataset>/<threat>/<name>.pt); <out>.part holds an "
        "unfinished download, resumed by the next call",
    ),
    p.add_argument(
        "--sidecar", type=Path, required=True, help="JSON to write: sha256, bytes, URL, robustbench version"
    ),
    p.add_argument(
        "--from-file",
        type=Path,
        default=None,
        help="take this copy (downloaded by hand in a browser) instead of the network",
    ),
)


@verb(
    "import-checkpoint",
    "convert a published MadryLab / RobustBench / torchvision file into a robinterp checkpoint",
    settings=("variant.checkpoint",),
)
def import_checkpoint(a):
    """The variant's checkpoint block says what the file is: a downloaded file ($defs checkpoint:
    format, arch, normalisation, sha256, ...) or a RobustBench zoo entry by name ($defs
    robustbench_checkpoint); the file itself is --input (the workflow's: the block's `path`, or the
    entry's file in robustbench_cache)."""
    from ..config import is_robustbench
    from ..data import load_split
    from ..errors import RobinterpError
    from ..published import imagenet_index, import_published, import_zoo

    block = a.settings["variant.checkpoint"]
    split = load_split(a.classes) if a.classes else None
    classes = split.classes if split else None
    if block.get("class_subset") == "wnids" and (classes is None or a.imagenet_index is None):
        raise RobinterpError("checkpoint.class_subset wnids needs --classes (the dataset split) and --imagenet-index")
    index_wnids = imagenet_index(a.imagenet_index) if a.imagenet_index and block.get("class_subset") else None
    if is_robustbench(block):
        from ..zoo import ZooCheckpoint

        return import_zoo(
            ZooCheckpoint.from_block(block, "checkpoint"),
            a.input,
            a.out,
            sidecar=a.sidecar,
            classes=classes,
            image_shape=split.image_shape if split else None,
            index_wnids=index_wnids,
            log=lambda line: print(line, flush=True),
        )
    import_published(
        block["format"],
        block["arch"],
        a.input,
        a.out,
        sha256=block["sha256"],
        mean=block["mean"],
        std=block["std"],
        num_classes=block["num_classes"],
        width=block["width"],
        classes=classes,
        class_subset=classes if index_wnids else None,
        index_wnids=index_wnids,
        log=lambda line: print(line, flush=True),
    )


import_checkpoint.flags = lambda p: (
    p.add_argument(
        "--input",
        type=Path,
        required=True,
        help="the downloaded file (.pt / .ckpt / .pth; a zoo entry's: robustbench_cache/<dataset>/<threat>/<name>.pt)",
    ),
    p.add_argument(
        "--sidecar",
        type=Path,
        default=None,
        help="a zoo entry's sidecar, written by download-robustbench (its sha256 is checked)",
    ),
    p.add_argument("--out", type=Path, required=True, help="robinterp checkpoint to write (.pt)"),
    p.add_argument(
        "--classes",
        type=Path,
        default=None,
        help="dataset split (folder or manifest) whose classes the model predicts, in label order",
    ),
    p.add_argument(
        "--imagenet-index",
        type=Path,
        default=None,
        help="LOC_synset_mapping.txt or the ILSVRC train folder: the wnid of each ImageNet output",
    ),
)
