# Helpers of published.smk (no torch): which variants are imported, and their import flags.
import re

from robinterp.config import get_variant, imported_variants

try:
    IMPORTED = imported_variants(config)
except RobinterpError as e:
    raise WorkflowError(str(e))


def checkpoint_cfg(dataset, variant):
    return get_variant(dataset_cfg(dataset), variant)["checkpoint"]


def import_flags(dataset, variant):
    """The checkpoint block as import-checkpoint flags (path and class_subset travel as inputs)."""
    block = checkpoint_cfg(dataset, variant)
    flags = {k: block.get(k) for k in ("format", "arch", "sha256", "width", "num_classes")}
    out = cli_flags(flags)
    for key in ("mean", "std"):
        if block.get(key):
            out += f" --{key} " + " ".join(str(float(x)) for x in block[key])
    if block.get("class_subset"):
        out += f" --class-subset {block['class_subset']}"
    return out


def imagenet_index_input(dataset, variant):
    """class_subset: wnids reads the wnid of every ImageNet output from LOC_synset_mapping.txt, or
    from the sorted class folders of the ILSVRC train folder."""
    if not checkpoint_cfg(dataset, variant).get("class_subset"):
        return []
    src = dataset_cfg(dataset)["source"]
    return [src.get("synset_mapping") or src["train_dir"]]


def check_checkpoint_files():
    """Fail before any job runs when an imported variant's file is missing."""
    for ds in enabled_datasets():
        for v in variants(ds):
            block = get_variant(dataset_cfg(ds), v).get("checkpoint")
            if block and not Path(block["path"]).is_file():
                raise WorkflowError(
                    f"datasets.{ds}.variants[{v}].checkpoint.path: {block['path']} does not exist. Download it "
                    f"(docs/published_models.md lists where), or leave the variant out with run_variants."
                )


check_checkpoint_files()
