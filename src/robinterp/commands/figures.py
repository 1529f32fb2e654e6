"""Figure verbs: read the arrays the analysis verbs wrote (never a model) -> PNG + PDF.

Per-variant inputs are given as aligned lists (`--variants a b --inputs A B --meta MA MB`);
variants are drawn side by side in that order.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import RobinterpError
from ..verbs import verb


def _aligned(a, *names):
    """The per-variant list flags, checked to have one entry per variant."""
    lists = [getattr(a, n) for n in names]
    for n, lst in zip(names, lists):
        if len(lst) != len(a.variants):
            raise RobinterpError(
                f"--{n.replace('_', '-')}: {len(lst)} paths for {len(a.variants)} variants "
                f"({a.variants}); give one per variant, in the same order"
            )
    return lists


def _classes(meta_paths):
    from .. import storage

    meta = storage.read_json(meta_paths[0])
    return meta.get("class_names") or meta["classes"]  # readable names where the data has them


def _load_npz(path):
    import numpy as np

    if not Path(path).is_file():
        raise RobinterpError(f"{path}: not found; run its analysis rule first")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _load_npys(**paths):
    import numpy as np

    for p in paths.values():
        if not Path(p).is_file():
            raise RobinterpError(f"{p}: not found; run its analysis rule first")
    return {k: np.load(p) for k, p in paths.items()}


def _npy_runs(a, *names):
    """{variant: {name: array}} from the per-variant .npy list flags `names`, and the meta paths."""
    *lists, meta = _aligned(a, *names, "meta")
    return {v: _load_npys(**dict(zip(names, files))) for v, *files in zip(a.variants, *lists)}, meta


def _common_flags(p, *arrays):
    """The flags of every figure verb, and one per-variant list flag per array kind (--images:
    images.npy of each variant, in --variants order)."""
    p.add_argument("--variants", nargs="+", required=True, help="variant names, in drawing order")
    p.add_argument("--meta", type=Path, nargs="+", required=True, help="each variant's meta.json")
    p.add_argument("--out-png", type=Path, required=True)
    p.add_argument("--out-pdf", type=Path, required=True)
    for name in arrays:
        p.add_argument(f"--{name}", type=Path, nargs="+", required=True, help=f"{name}.npy of each variant")


@verb(
    "plot-attributions",
    "IG/SHAP figures (3-sample comparison or A-H x 1-3 grid) from attributions.npz",
    settings=("analyses.plots",),
)
def plot_attributions_verb(a):
    from ..figures import PlotConfig, attribution_compare, attribution_grid, save

    cfg = PlotConfig.from_block(a.settings["analyses.plots"])
    inputs, meta = _aligned(a, "inputs", "meta")
    runs = {v: _load_npz(p) for v, p in zip(a.variants, inputs)}
    first = runs[a.variants[0]]
    for v, run in runs.items():
        if not (run["indices"] == first["indices"]).all():
            raise RobinterpError(
                f"{v}: explains other test images than {a.variants[0]}; give every variant the "
                f"same analyses.{a.method}.seed and num_images"
            )
    draw = attribution_compare if a.layout == "compare" else attribution_grid
    save(draw(runs, _classes(meta), a.method, cfg), a.out_png, a.out_pdf, cfg.dpi)
    print(f"plot-attributions: {a.method} {a.layout} -> {a.out_png}")


plot_attributions_verb.flags = lambda p: (
    _common_flags(p),
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="each variant's attributions.npz"),
    p.add_argument("--method", choices=["ig", "shap"], required=True, help="attribution method drawn"),
    p.add_argument(
        "--layout",
        choices=["compare", "grid"],
        required=True,
        help="compare: a few samples side by side (Fig. 2/6); grid: A-H x 1-3 per variant",
    ),
)


@verb(
    "plot-class-generation",
    "class generation grid (seeds + generated images per variant)",
    settings=("analyses.plots",),
)
def plot_class_generation_verb(a):
    from ..figures import PlotConfig, class_generation_grid, save

    cfg = PlotConfig.from_block(a.settings["analyses.plots"])
    runs, meta = _npy_runs(a, "images", "seeds", "labels")
    save(class_generation_grid(runs, _classes(meta), cfg), a.out_png, a.out_pdf, cfg.dpi)
    print(f"plot-class-generation -> {a.out_png}")


plot_class_generation_verb.flags = lambda p: _common_flags(p, "images", "seeds", "labels")


@verb(
    "plot-inversion",
    "representation inversion figure: target / source / inverted per variant",
    settings=("analyses.plots",),
)
def plot_inversion_verb(a):
    from .. import storage
    from ..figures import PlotConfig, inversion_grid, save

    cfg = PlotConfig.from_block(a.settings["analyses.plots"])
    runs, meta = _npy_runs(a, "targets", "sources", "inverted")
    metas = {v: storage.read_json(m) for v, m in zip(a.variants, meta)}
    save(inversion_grid(runs, metas, _classes(meta), cfg), a.out_png, a.out_pdf, cfg.dpi)
    print(f"plot-inversion -> {a.out_png}")


plot_inversion_verb.flags = lambda p: _common_flags(p, "targets", "sources", "inverted")


@verb(
    "plot-feature-vis",
    "feature visualisation figure: maximising image + top/bottom test images",
    settings=("analyses.plots",),
)
def plot_feature_vis_verb(a):
    from ..figures import PlotConfig, feature_vis_grid, save

    cfg = PlotConfig.from_block(a.settings["analyses.plots"])
    inputs, meta = _aligned(a, "inputs", "meta")
    runs = {v: _load_npz(p) for v, p in zip(a.variants, inputs)}
    save(feature_vis_grid(runs, _classes(meta), cfg), a.out_png, a.out_pdf, cfg.dpi)
    print(f"plot-feature-vis -> {a.out_png}")


plot_feature_vis_verb.flags = lambda p: (
    _common_flags(p),
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="each variant's features.npz"),
)
