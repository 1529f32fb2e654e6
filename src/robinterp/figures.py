"""The paper's interpretability figures, drawn from saved arrays only (no model, no torch).

Every function takes plain numpy arrays per variant (variants side by side, in config order),
returns a matplotlib Figure, and `save` writes it as PNG (report) and PDF (papers).
Attribution maps: channels summed, signed; red = pushes the explained class's score up,
blue = pushes it down, transparent = no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from . import storage  # noqa: E402
from .errors import RobinterpError  # noqa: E402
from .settings import Settings  # noqa: E402

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class PlotConfig(Settings):
    """The `analyses.plots` block: changing it reruns only plot jobs."""

    SECTION = "analyses.plots"

    compare_images: int  # Fig. 2/6: samples in the standard-vs-robust comparison
    grid_columns: int  # Fig. 10/13: columns A-H ...
    grid_rows: int  # ... x rows 1-3
    scale: str  # image: each map / its own percentile; figure: one scale for the figure
    percentile: float  # |attribution| percentile mapped to the end of the colour bar
    cmap: str
    overlay_alpha: float  # opacity of the strongest attributions over the gray image
    class_generation_samples: int  # columns per variant
    max_classes: int  # rows of the class generation grid (first classes)
    inversion_rows: int  # pairs shown per source kind
    dpi: int


def save(fig, png: str | Path, pdf: str | Path, dpi: int) -> None:
    for path, kw in ((png, {"dpi": dpi}), (pdf, {})):
        with storage.atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight", **kw)
    plt.close(fig)


def as_hwc(img: np.ndarray) -> np.ndarray:
    """One image (C x H x W float in [0, 1] or H x W x C uint8) -> H x W x 3 float for imshow."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255
    elif img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return np.clip(img, 0, 1)


def attribution_maps(attr: np.ndarray, scale: str, percentile: float, shared: float | None = None):
    """N x C x H x W -> (N x H x W maps in [-1, 1], the divisor(s)): channels summed, signed."""
    maps = attr.sum(1)
    if scale == "figure":
        div = shared if shared is not None else np.percentile(np.abs(maps), percentile)
        div = np.full(len(maps), max(float(div), 1e-12))
    else:
        div = np.maximum(np.percentile(np.abs(maps).reshape(len(maps), -1), percentile, axis=1), 1e-12)
    return np.clip(maps / div[:, None, None], -1, 1), div


def overlay(ax, img: np.ndarray, amap: np.ndarray, cmap, alpha: float) -> None:
    """Gray image under the signed map; opacity grows with |attribution|."""
    gray = as_hwc(img).mean(-1)
    ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
    rgba = cmap(Normalize(-1, 1)(amap))
    rgba[..., 3] = np.abs(amap) * alpha
    ax.imshow(rgba)


NAME_WIDTH = 14  # characters per line of a class name in titles


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """A class name for a title: the first WordNet synonym ('tiger shark, Galeocerdo cuvieri' ->
    'tiger shark'), broken after spaces, '_' or '-' onto at most two lines of `width`
    characters; what does not fit ends in '...'."""
    import re

    first = name.split(",")[0].strip() or name
    lines, line = [], ""
    for token in re.findall(r"[^ _-]+[ _-]*|[ _-]+", first):  # a word with the separators after it
        if line and len((line + token).rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += token
    lines.append(line.rstrip())
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:]) + " "]
    cut = lambda s: s.rstrip() if len(s.rstrip()) <= width else s[: width - 1].rstrip() + "\u2026"
    return "\n".join(cut(s) for s in lines)


def text_size(texts, fontsize: float) -> tuple[float, int]:
    """(width in inches of the widest line, most lines) of the given strings at `fontsize`."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    measure, prop = TextToPath(), FontProperties(size=fontsize)
    lines = [line for t in texts for line in str(t).split("\n")]
    width = max((measure.get_text_width_height_descent(line, prop, ismath=False)[0] for line in lines), default=0)
    return 1.1 * width / 72, max((str(t).count("\n") + 1 for t in texts), default=1)


def line_height(fontsize: float) -> float:
    return 1.3 * fontsize / 72  # inches


def cell_figure(
    nrows: int,
    ncols: int,
    side: float,
    gap_w: float,
    gap_h: float,
    left: float,
    right: float,
    top: float,
    bottom: float,
):
    """A grid of square image cells with margins and gaps given in inches, so that titles
    measured beforehand fit between the cells instead of running into their neighbours."""
    width = left + ncols * side + (ncols - 1) * gap_w + right
    height = top + nrows * side + (nrows - 1) * gap_h + bottom
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap_w / side,
        hspace=gap_h / side,
    )
    return fig, axes


def _blank(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _colourbar(fig, axes, cmap, cfg: PlotConfig, method: str, cax=None):
    sm = plt.cm.ScalarMappable(norm=Normalize(-1, 1), cmap=cmap)
    kw = {"cax": cax} if cax is not None else {"ax": axes, "fraction": 0.025, "pad": 0.02}
    cb = fig.colorbar(sm, ticks=[-1, 0, 1], **kw)
    cb.ax.set_yticklabels(["-1 (against)", "0", "+1 (for)"], fontsize=7)
    unit = "each image's" if cfg.scale == "image" else "the figure's"
    cb.set_label(f"{method.upper()} value / {unit} {cfg.percentile:g}th percentile of |value| (clipped)", fontsize=7)


def attribution_compare(runs: dict, classes: list[str], method: str, cfg: PlotConfig):
    """Fig. 2/6: per sample, the image, then heat map + overlay for every variant."""
    classes = [short_name(c, 18) for c in classes]
    first = next(iter(runs.values()))
    n = min(cfg.compare_images, len(first["images"]))
    shared = _shared_scale(runs, cfg)
    cmap = plt.get_cmap(cfg.cmap)
    cols = 1 + 2 * len(runs)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.8 * n + 0.6), squeeze=False)
    for r in range(n):
        img = first["images"][r]
        axes[r, 0].imshow(as_hwc(img))
        axes[r, 0].set_ylabel(f"true: {classes[first['labels'][r]]}", fontsize=8)
        for j, run in enumerate(runs.values()):
            maps, _ = attribution_maps(run["attributions"][:n], cfg.scale, cfg.percentile, shared)
            pred = classes[run["preds"][r]]
            axes[r, 1 + 2 * j].imshow(maps[r], cmap=cmap, vmin=-1, vmax=1)
            axes[r, 1 + 2 * j].set_title(f"pred: {pred}", fontsize=7, color=_ok(run, r))
            overlay(axes[r, 2 + 2 * j], img, maps[r], cmap, cfg.overlay_alpha)
    for j, variant in enumerate(runs):
        axes[0, 1 + 2 * j].set_title(f"{variant}\nheat map\n" + axes[0, 1 + 2 * j].get_title(), fontsize=7)
        axes[0, 2 + 2 * j].set_title(f"{variant}\noverlay", fontsize=7)
    axes[0, 0].set_title("image", fontsize=7)
    for ax in axes.ravel():
        _blank(ax)
    _colourbar(fig, axes, cmap, cfg, method)
    fig.suptitle(f"{_METHOD_NAMES[method]}: red = supports the {_explained(method)}, blue = against it", fontsize=8)
    return fig


def attribution_grid(runs: dict, classes: list[str], method: str, cfg: PlotConfig):
    """Fig. 10/13/16/17: overlays of up to columns x rows samples per variant, A-H x 1-3.

    Above each overlay its cell (A1) and true class, below it the predicted class (red = wrong);
    gaps and margins are measured from the longest class name, so no two labels touch."""
    first = next(iter(runs.values()))
    n = min(cfg.grid_columns * cfg.grid_rows, len(first["images"]))
    cols = min(cfg.grid_columns, n)  # fewer images than a row: no empty cells
    rows = -(-n // cols)
    names = [short_name(c) for c in classes]
    cell = lambda k: LETTERS[k % cols] + (str(k // cols + 1) if rows > 1 else "")
    titles = {
        (v, k): (f"{cell(k)} t: {names[run['labels'][k]]}", names[run["preds"][k]])
        for v, run in runs.items()
        for k in range(n)
    }
    fs = 6
    tw, tl = text_size([t for t, _ in titles.values()], fs)
    pw, pl = text_size([p for _, p in titles.values()], fs)
    side = 0.95
    ylabels = [f"{v}\nrow {r + 1}" if rows > 1 else v for v in runs for r in range(rows)]
    lw, _ = text_size(ylabels, 7)
    pad = 0.1
    title_h, pred_h = tl * line_height(fs) + 0.1, pl * line_height(fs) + 0.06
    fig, axes = cell_figure(
        rows * len(runs),
        cols,
        side,
        gap_w=max(0.12, max(tw, pw) - side + 0.12),
        gap_h=title_h + pred_h + pad,
        left=lw + 0.25,
        right=1.4,
        top=title_h + 0.55,
        bottom=pred_h + 0.1,
    )
    shared = _shared_scale(runs, cfg)
    cmap = plt.get_cmap(cfg.cmap)
    for j, (variant, run) in enumerate(runs.items()):
        maps, _ = attribution_maps(run["attributions"][:n], cfg.scale, cfg.percentile, shared)
        for k in range(rows * cols):
            r, c = divmod(k, cols)
            ax = axes[j * rows + r, c]
            _blank(ax)
            if k >= n:
                ax.axis("off")
                continue
            overlay(ax, run["images"][k], maps[k], cmap, cfg.overlay_alpha)
            true, pred = titles[(variant, k)]
            ax.set_title(true, fontsize=fs, color=_ok(run, k), pad=3)
            ax.set_xlabel(f"p: {pred}", fontsize=fs, color=_ok(run, k), labelpad=2)
            if c == 0:
                ax.set_ylabel(ylabels[j * rows + r], fontsize=7)
    right = axes[0, -1].get_position()
    cax = fig.add_axes([right.x1 + 0.25 / fig.get_figwidth(), 0.15, 0.12 / fig.get_figwidth(), 0.7])
    _colourbar(fig, axes, cmap, cfg, method, cax=cax)
    fig.suptitle(
        f"{_METHOD_NAMES[method]} overlays (t = true, p = predicted class; red label = wrong). "
        f"Red = supports the {_explained(method)}, blue = against it",
        fontsize=8,
    )
    return fig


_METHOD_NAMES = {"ig": "Integrated Gradients", "shap": "SHAP (expected gradients)"}


def _explained(method):
    return "explained class (IG target)" if method == "ig" else "top predicted class"


def _ok(run, i):
    return "black" if run["labels"][i] == run["preds"][i] else "red"


def _shared_scale(runs, cfg):
    if cfg.scale != "figure":
        return None
    maps = np.concatenate([r["attributions"].sum(1).ravel() for r in runs.values()])
    return float(np.percentile(np.abs(maps), cfg.percentile))


def class_generation_grid(runs: dict, classes: list[str], cfg: PlotConfig):
    """Fig. 3/7/14/19: rows = classes; seeds, then each variant's generated images."""
    classes = [short_name(c, 24) for c in classes]
    first = next(iter(runs.values()))
    k = cfg.class_generation_samples
    shown = [c for c in range(len(classes)) if (first["labels"] == c).any()][: cfg.max_classes]
    same_seeds = all(np.array_equal(r["seeds"], first["seeds"]) for r in runs.values())
    groups = (
        [("seeds", first["seeds"], first["labels"])]
        if same_seeds
        else [(f"{v}: seeds", r["seeds"], r["labels"]) for v, r in runs.items()]
    )
    groups += [(f"{v}: generated", r["images"], r["labels"]) for v, r in runs.items()]
    k = min(k, min(int((first["labels"] == c).sum()) for c in shown))
    fig, axes = plt.subplots(
        len(shown), k * len(groups), figsize=(0.8 * k * len(groups) + 0.8, 0.85 * len(shown) + 0.6), squeeze=False
    )
    for g, (title, imgs, labels) in enumerate(groups):
        for r, c in enumerate(shown):
            own = imgs[labels == c]
            for i in range(k):
                ax = axes[r, g * k + i]
                ax.imshow(as_hwc(own[i]))
                _blank(ax)
                if g * k + i == 0:
                    ax.set_ylabel(classes[c], fontsize=7, rotation=0, ha="right", va="center")
        axes[0, g * k].set_title(title, fontsize=8, loc="left")
    fig.suptitle("Class-specific image generation: PGD L2 on the class logit from class-conditional seeds", fontsize=9)
    return fig


def inversion_grid(runs: dict, meta: dict, classes: list[str], cfg: PlotConfig):
    """Fig. 4/8/11/18: target | source | inverted per variant, for each source kind."""
    names = [short_name(c) for c in classes]
    first_v = next(iter(runs))
    first, kinds = runs[first_v], np.asarray(meta[first_v]["source_kind"])
    rows = [i for kind in dict.fromkeys(kinds) for i in np.flatnonzero(kinds == kind)[: cfg.inversion_rows]]
    cols = 2 + len(runs)
    t_labels = meta[first_v]["target_labels"]
    s_labels = meta[first_v]["source_labels"]
    titles = {}
    for r, i in enumerate(rows):
        titles[r, 0] = f"target:\n{names[t_labels[i]]}"
        titles[r, 1] = "noise" if kinds[i] == "noise" else f"source:\n{names[s_labels[i]]}"
        for j, variant in enumerate(runs):
            d0, d1 = meta[variant]["distance_before"][i], meta[variant]["distance_after"][i]
            titles[r, 2 + j] = (f"{variant}\n" if r == 0 else "") + f"d {d0:.2f} -> {d1:.2f}"
    fs, side = 7, 1.0
    width, _ = text_size(titles.values(), fs)
    lines = max(t.count("\n") + 1 for (r, _), t in titles.items() if r > 0) if len(rows) > 1 else 0
    first_lines = max(t.count("\n") + 1 for (r, _), t in titles.items() if r == 0)
    lw, _ = text_size([f"{k} source" for k in kinds], fs)
    fig, axes = cell_figure(
        len(rows),
        cols,
        side,
        gap_w=max(0.12, width - side + 0.12),
        gap_h=lines * line_height(fs) + 0.12,
        left=lw + 0.2,
        right=0.1,
        top=first_lines * line_height(fs) + 0.45,
        bottom=0.1,
    )
    for r, i in enumerate(rows):
        axes[r, 0].imshow(as_hwc(first["targets"][i]))
        axes[r, 1].imshow(as_hwc(first["sources"][i]))
        axes[r, 0].set_ylabel(f"{kinds[i]} source", fontsize=fs)
        for j, run in enumerate(runs.values()):
            axes[r, 2 + j].imshow(as_hwc(run["inverted"][i]))
    for (r, c), t in titles.items():
        axes[r, c].set_title(t, fontsize=fs, pad=3)
    for ax in axes.ravel():
        _blank(ax)
    fig.suptitle("Representation inversion (eq. 15); d = ||R(x) - R(target)|| / ||R(target)||", fontsize=8)
    return fig


def feature_vis_grid(runs: dict, classes: list[str], cfg: PlotConfig):
    """Fig. 5/9/12/15: per neuron, the maximising image then the top-k and bottom-k test images.

    Every image is titled (class and activation, on their own lines); the column gaps are
    measured from the widest title, so neighbouring titles never merge."""
    first = next(iter(runs.values()))
    k = first["top_images"].shape[1]
    n = len(first["neurons"])
    per = 1 + 2 * k
    names = [short_name(c) for c in classes]
    fs = 6
    titles = {}
    for j, (variant, run) in enumerate(runs.items()):
        for r, neuron in enumerate(run["neurons"]):
            base = j * per
            titles[r, base] = f"n{neuron}:\n{run['activation_before'][r]:.1f} -> {run['activation_after'][r]:.1f}"
            for i in range(k):
                for off, key in ((1, "top"), (1 + k, "bottom")):
                    titles[r, base + off + i] = (
                        f"{names[run[f'{key}_labels'][r, i]]}\n({run[f'{key}_activations'][r, i]:.1f})"
                    )
        titles[0, base] = f"{variant}\nmaximised\n" + titles[0, base]
        titles[0, base + 1] = f"top {k}\n" + titles[0, base + 1]
        titles[0, base + 1 + k] = f"bottom {k}\n" + titles[0, base + 1 + k]
    side = 0.8
    width, _ = text_size(titles.values(), fs)
    lines = max(t.count("\n") + 1 for (r, _), t in titles.items() if r > 0) if n > 1 else 0
    first_lines = max(t.count("\n") + 1 for (r, _), t in titles.items() if r == 0)
    lw, _ = text_size([f"neuron {nr}" for nr in first["neurons"]], 7)
    fig, axes = cell_figure(
        n,
        per * len(runs),
        side,
        gap_w=max(0.1, width - side + 0.1),
        gap_h=lines * line_height(fs) + 0.12,
        left=lw + 0.2,
        right=0.1,
        top=first_lines * line_height(fs) + 0.45,
        bottom=0.1,
    )
    for j, run in enumerate(runs.values()):
        for r, neuron in enumerate(run["neurons"]):
            base = j * per
            axes[r, base].imshow(as_hwc(run["visualisations"][r]))
            if j == 0:
                axes[r, base].set_ylabel(f"neuron {neuron}", fontsize=7)
            for i in range(k):
                for off, key in ((1, "top"), (1 + k, "bottom")):
                    axes[r, base + off + i].imshow(as_hwc(run[f"{key}_images"][r, i]))
    for (r, c), t in titles.items():
        axes[r, c].set_title(t, fontsize=fs, pad=3)
    for ax in axes.ravel():
        _blank(ax)
    fig.suptitle(
        "Direct feature visualisation: maximise R(x)[neuron] (activation start -> end); test images with "
        "the highest / lowest activation (class, activation)",
        fontsize=8,
    )
    return fig


def plot_randomisation_cascade(results: list[dict], png: str | Path, title: str = "") -> None:
    """Adebayo et al.'s cascade figure: per method, mean Spearman of |attribution| (95% interval)
    against the number of stages re-initialised from the top, one line per variant."""
    methods = list(dict.fromkeys(m for r in results for m in r["cascade"]))
    if not methods:
        raise RobinterpError("randomisation plot: no cascade in the inputs (write them with parameter-randomisation)")
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 3.8), squeeze=False)
    for ax, method in zip(axes[0], methods):
        for i, r in enumerate(res for res in results if method in res["cascade"]):
            c = r["cascade"][method]
            steps = np.arange(len(c["stages"]) + 1)  # 0 = the trained model (correlation 1)
            mean = np.r_[1.0, np.asarray(c["mean"], float)]
            ax.plot(steps, mean, "o-", ms=3, color=f"C{i}", label=r["variant"])
            ax.fill_between(
                steps[1:], np.asarray(c["low"], float), np.asarray(c["high"], float), color=f"C{i}", alpha=0.2
            )
        ax.set_xticks(steps, ["trained"] + [f"+{s}" for s in c["stages"]], rotation=60, ha="right", fontsize=7)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(-0.2, 1.05)
        ax.set_ylabel("Spearman of |attribution| vs trained")
        ax.set_title(f"{method}: lower = the explanation depends on the weights", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with storage.atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
