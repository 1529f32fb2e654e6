"""Interpretability compute verbs: ig, shap, class-generation, inversion, feature-vis.

Each reads one checkpoint and packed splits, runs one method with its settings (the config
block `analyses.<method>` and `device`), and writes arrays plus a meta.json (settings, per-image
checks, provenance). Plot verbs
(commands/figures.py) read only these files.
"""

from __future__ import annotations

from pathlib import Path

from ..verbs import verb


def _setup(a, *splits: Path) -> tuple:
    """Model (eval mode), device, the test split and any further `splits`, each checked to fit the model."""
    from ..checkpoints import load_fitting
    from ..device import select

    device, _ = select(a.settings["device"])  # prints where the job runs
    model, _, loaded = load_fitting(a.checkpoint, device, a.data, *splits)
    return model, device, *loaded


def _provenance(a, split, device, **extra):
    from .. import storage
    from ..device import describe

    return {
        "variant": a.variant,
        "checkpoint": str(a.checkpoint),
        "checkpoint_sha256": storage.sha256_file(a.checkpoint),
        "data": str(a.data),
        "data_sha256": split.sha256,
        **extra,
        "provenance": storage.provenance(device=describe(device)),
    }


def _common_flags(p):
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="packed test split (folder or manifest)")
    p.add_argument("--variant", default="")
    p.add_argument("--meta", type=Path, required=True, help="meta.json: settings, checks, provenance")


def _out_flags(p, **files):
    """One required --out-<name> flag per array the verb writes ({name: help})."""
    for name, help in files.items():
        p.add_argument(f"--out-{name}", type=Path, required=True, help=help)


# --- attributions ---------------------------------------------------------------------------


@verb(
    "ig",
    "Integrated Gradients (trapezoid, eq. 9-12) for test images -> attributions.npz",
    settings=("analyses.ig", "device"),
)
def ig_verb(a):
    import numpy as np
    import torch

    from .. import storage
    from ..attributions import IGConfig, choose_images, explain_ig, predict

    cfg = IGConfig.from_block(a.settings["analyses.ig"])
    model, device, split = _setup(a)
    idx = choose_images(cfg.num_images, split.labels, cfg.seed)
    x, y = (t.to(device) for t in split.tensors(idx))
    preds = predict(model, x, cfg.batch_size)
    target = preds if cfg.target == "pred" else y
    gen = torch.Generator().manual_seed(cfg.seed)
    attr, check = explain_ig(model, x, target, cfg, gen)
    storage.save_npz(
        a.out,
        images=x.cpu().numpy().astype(np.float32),
        attributions=attr.cpu().numpy().astype(np.float32),
        labels=y.cpu().numpy(),
        preds=preds.cpu().numpy(),
        indices=idx,
        targets=target.cpu().numpy(),
        output=np.array(cfg.output),
    )
    storage.write_json(
        a.meta,
        {
            "method": "integrated_gradients",
            "settings": cfg.__dict__,
            "classes": split.classes,
            "class_names": split.class_names,
            **check,
            **_provenance(a, split, device),
        },
    )
    gap = max(map(abs, check["completeness_gap"]))
    print(f"ig: {a.variant} {len(idx)} images, max |completeness gap| {gap:.2e} -> {a.out}")


ig_verb.flags = lambda p: (_common_flags(p), p.add_argument("--out", type=Path, required=True, help="attributions.npz"))


@verb(
    "shap",
    "SHAP expected gradients (shap.GradientExplainer, top class) -> attributions.npz",
    settings=("analyses.shap", "device"),
)
def shap_verb(a):
    import numpy as np
    import torch

    from .. import storage
    from ..attributions import ShapConfig, choose_images, explain_shap, predict, shap_background

    cfg = ShapConfig.from_block(a.settings["analyses.shap"])
    model, device, split, train = _setup(a, a.train)
    idx = choose_images(cfg.num_images, split.labels, cfg.seed)
    bg_idx, background = shap_background(train, cfg)
    x, y = (t.to(device) for t in split.tensors(idx))
    torch.manual_seed(cfg.seed)
    values, explained, check = explain_shap(model, x, background.to(device), cfg)
    storage.save_npz(
        a.out,
        images=x.cpu().numpy().astype(np.float32),
        attributions=values.numpy().astype(np.float32),
        labels=y.cpu().numpy(),
        preds=predict(model, x, cfg.batch_size).cpu().numpy(),
        indices=idx,
        targets=explained.numpy(),
        background_indices=bg_idx.astype(np.int64),
        output=np.array(cfg.output),
    )
    storage.write_json(
        a.meta,
        {
            "method": "shap_gradient_explainer",
            "settings": cfg.__dict__,
            "classes": split.classes,
            "class_names": split.class_names,
            "train": str(a.train),
            "train_sha256": train.sha256,
            **check,
            **_provenance(a, split, device),
        },
    )
    print(f"shap: {a.variant} {len(idx)} images, background {len(bg_idx)}, nsamples {cfg.nsamples} -> {a.out}")


shap_verb.flags = lambda p: (
    _common_flags(p),
    p.add_argument("--train", type=Path, required=True, help="packed training split (background)"),
    p.add_argument("--out", type=Path, required=True, help="attributions.npz"),
)


# --- feature visualisations -----------------------------------------------------------------


@verb(
    "class-generation",
    "class-conditional seeds + PGD on the class logit -> images/seeds/labels .npy",
    settings=("analyses.class_generation", "device"),
)
def class_generation_verb(a):
    import numpy as np

    from .. import storage
    from ..synthesis import ClassGenerationConfig, generate_classes, target_logits, to_uint8

    cfg = ClassGenerationConfig.from_block(a.settings["analyses.class_generation"])
    model, device, split = _setup(a)
    seeds, images, targets = generate_classes(
        model, lambda k: split.tensors(np.flatnonzero(split.labels == k))[0], split.num_classes, cfg
    )
    before, _ = target_logits(model, seeds, targets, cfg.batch_size)
    after, is_target = target_logits(model, images, targets, cfg.batch_size)
    storage.save_npy(a.out_images, to_uint8(images))
    storage.save_npy(a.out_seeds, to_uint8(seeds))
    storage.save_npy(a.out_labels, targets.cpu().numpy())
    hit = is_target.float().mean().item()
    storage.write_json(
        a.meta,
        {
            "method": "class_generation",
            "settings": cfg.__dict__,
            "classes": split.classes,
            "class_names": split.class_names,
            "n": len(targets),
            "target_logit_before": before.tolist(),
            "target_logit_after": after.tolist(),
            "fraction_classified_as_target": hit,
            **_provenance(a, split, device),
        },
    )
    print(
        f"class-generation: {a.variant} {len(targets)} images, mean target logit "
        f"{before.mean():.2f} -> {after.mean():.2f}, classified as target {hit:.2f}"
    )


class_generation_verb.flags = lambda p: (
    _common_flags(p),
    _out_flags(
        p,
        images="images.npy (uint8 N x H x W x C)",
        seeds="seeds.npy (uint8, same shape)",
        labels="labels.npy (int64 target class)",
    ),
)


@verb(
    "inversion",
    "representation inversion (eq. 15) from other-class images and noise -> .npy",
    settings=("analyses.inversion", "device"),
)
def inversion_verb(a):
    from .. import storage
    from ..synthesis import InversionConfig, inversion_inputs, invert_representation, to_uint8

    cfg = InversionConfig.from_block(a.settings["analyses.inversion"])
    model, device, split = _setup(a)
    pairs = inversion_inputs(split, cfg)
    targets, sources = pairs.pop("targets"), pairs.pop("sources")
    inverted, before, after = invert_representation(model, sources.to(device), targets.to(device), cfg)
    storage.save_npy(a.out_targets, to_uint8(targets))
    storage.save_npy(a.out_sources, to_uint8(sources))
    storage.save_npy(a.out_inverted, to_uint8(inverted))
    storage.write_json(
        a.meta,
        {
            "method": "representation_inversion",
            "settings": cfg.__dict__,
            "classes": split.classes,
            "class_names": split.class_names,
            **pairs,
            "target_labels": split.labels[pairs["target_indices"]],
            "source_labels": [int(split.labels[i]) if i >= 0 else None for i in pairs["source_indices"]],
            "distance_before": before.tolist(),
            "distance_after": after.tolist(),
            **_provenance(a, split, device),
        },
    )
    print(
        f"inversion: {a.variant} {len(targets)} pairs, mean normalised distance {before.mean():.3f} -> "
        f"{after.mean():.3f}"
    )


inversion_verb.flags = lambda p: (
    _common_flags(p),
    _out_flags(p, targets="targets.npy (uint8 N x H x W x C)", sources="sources.npy", inverted="inverted.npy"),
)


@verb(
    "feature-vis",
    "maximise coordinates of R(x); top/bottom activating test images -> features.npz",
    settings=("analyses.feature_vis", "device"),
)
def feature_vis_verb(a):
    from .. import storage
    from ..synthesis import FeatureVisConfig, feature_vis

    cfg = FeatureVisConfig.from_block(a.settings["analyses.feature_vis"])
    model, device, split = _setup(a)
    arrays, record = feature_vis(model, split, cfg)
    storage.save_npz(a.out, **arrays)
    storage.write_json(
        a.meta,
        {
            "method": "feature_visualisation",
            "settings": cfg.__dict__,
            "classes": split.classes,
            "class_names": split.class_names,
            **record,
            **_provenance(a, split, device),
        },
    )
    before, after = arrays["activation_before"], arrays["activation_after"]
    print(
        f"feature-vis: {a.variant} neurons {record['neurons']}, mean activation {before.mean():.3f} -> "
        f"{after.mean():.3f}"
    )


feature_vis_verb.flags = lambda p: (
    _common_flags(p),
    p.add_argument("--out", type=Path, required=True, help="features.npz"),
)
