"""Figure labels never run into each other, for short, CIFAR-10 and long WordNet class names."""

import itertools

import numpy as np
import pytest

from robinterp.figures import PlotConfig, attribution_grid, feature_vis_grid, inversion_grid, short_name

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOLDER = ["h_stripes", "v_stripes", "checkers", "diagonal_stripes"]
# among the longest ILSVRC class names (LOC_synset_mapping.txt), as Small ImageNet 150 may draw them
WORDNET = [
    "American Staffordshire terrier, Staffordshire terrier, American pit bull terrier, pit bull",
    "Staffordshire bullterrier, Staffordshire bull terrier",
    "German short-haired pointer",
    "black-and-tan coonhound",
    "Greater Swiss Mountain dog",
    "soft-coated wheaten terrier",
    "three-toed sloth, ai, Bradypus tridactylus",
    "African hunting dog, hyena dog, Cape hunting dog",
    "West Highland white terrier",
    "Brabancon griffon",
    "crane",
    "ox",
]
SMALL_IMAGENET = (WORDNET * 13)[:150]
CLASS_SETS = {
    "digits": [str(i) for i in range(10)],
    "cifar10": CIFAR10,
    "folder": FOLDER,
    "small_imagenet": SMALL_IMAGENET,
}


def _labels(fig):
    """Every non-empty title, x label and y label of the figure's image axes, with its axes."""
    out = []
    for ax in fig.axes:
        for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label):
            if t.get_text() and t.get_visible():
                out.append((ax, t))
    return out


def assert_no_overlap(fig):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    labels = [(ax, t, t.get_window_extent(r)) for ax, t in _labels(fig)]
    for (_, t1, b1), (_, t2, b2) in itertools.combinations(labels, 2):
        assert not b1.overlaps(b2), f"{t1.get_text()!r} overlaps {t2.get_text()!r}"
    images = [ax for ax in fig.axes if ax.images]
    for ax, t, b in labels:
        for other in images:
            if other is not ax:
                assert not b.overlaps(other.get_window_extent(r)), f"{t.get_text()!r} runs into another image"


def _attr_runs(classes, n, variants=("standard", "robust_l2")):
    rng = np.random.default_rng(0)
    order = np.argsort([-len(c) for c in classes])  # the longest names, true and predicted
    labels = order[np.arange(n) % len(classes)]
    return {
        v: {
            "images": rng.random((n, 3, 8, 8)).astype(np.float32),
            "attributions": rng.standard_normal((n, 3, 8, 8)).astype(np.float32),
            "labels": labels,
            "preds": np.roll(labels, i + 1),
        }
        for i, v in enumerate(variants)
    }


@pytest.mark.parametrize("name", list(CLASS_SETS))
@pytest.mark.parametrize("n", [24, 5])
def test_attribution_grid_labels_do_not_overlap(name, n):
    import matplotlib.pyplot as plt

    classes = CLASS_SETS[name]
    fig = attribution_grid(_attr_runs(classes, n), classes, "ig", PlotConfig.of())
    assert_no_overlap(fig)
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    if n < PlotConfig.of().grid_columns:  # fewer images than a row: one row, no "row 1", no empty cells
        assert not any("row" in y for y in ylabels)
        assert sum(1 for ax in fig.axes if ax.images) == 2 * n and len(fig.axes) == 2 * n + 1  # + colour bar
    else:
        assert any("row 3" in y for y in ylabels)
    plt.close(fig)


@pytest.mark.parametrize("name", list(CLASS_SETS))
def test_feature_vis_titles_do_not_overlap(name):
    import matplotlib.pyplot as plt

    classes = CLASS_SETS[name]
    rng = np.random.default_rng(0)
    longest = int(np.argmax([len(c) for c in classes]))
    runs = {
        v: {
            "neurons": np.array([3, 17, 250]),
            "visualisations": rng.random((3, 3, 8, 8)),
            "activation_before": rng.random(3),
            "activation_after": 100 * rng.random(3),
            "top_images": rng.random((3, 3, 3, 8, 8)),
            "bottom_images": rng.random((3, 3, 3, 8, 8)),
            "top_labels": np.full((3, 3), longest),
            "bottom_labels": (np.arange(9).reshape(3, 3) % len(classes)),
            "top_activations": 10 * rng.random((3, 3)),
            "bottom_activations": -rng.random((3, 3)),
        }
        for v in ("standard", "robust_l2_eps1.5")
    }
    fig = feature_vis_grid(runs, classes, PlotConfig.of())
    assert_no_overlap(fig)
    plt.close(fig)


@pytest.mark.parametrize("name", list(CLASS_SETS))
def test_inversion_titles_do_not_overlap(name):
    import matplotlib.pyplot as plt

    classes = CLASS_SETS[name]
    rng = np.random.default_rng(0)
    order = [int(i) for i in np.argsort([-len(c) for c in classes])[:4]]  # the longest names
    meta = {
        v: {
            "source_kind": ["image"] * 4 + ["noise"] * 4,
            "target_labels": order * 2,
            "source_labels": order[1:] + order[:1] + order,
            "distance_before": rng.random(8).tolist(),
            "distance_after": rng.random(8).tolist(),
        }
        for v in ("standard", "robust_l2_eps1.5")
    }
    runs = {v: {k: rng.random((8, 3, 8, 8)) for k in ("targets", "sources", "inverted")} for v in meta}
    fig = inversion_grid(runs, meta, classes, PlotConfig.of())
    assert_no_overlap(fig)
    plt.close(fig)


def test_short_names_keep_the_first_synonym_on_two_lines():
    assert short_name("automobile") == "automobile"
    assert short_name("tiger shark, Galeocerdo cuvieri") == "tiger shark"
    assert short_name("Staffordshire bullterrier, Staffordshire bull terrier") == "Staffordshire\nbullterrier"
    long = short_name("American Staffordshire terrier, pit bull")
    assert long.count("\n") == 1 and long.endswith("\u2026") and all(len(x) <= 14 for x in long.split("\n"))
    assert short_name("n01440764") == "n01440764"


def test_figures_name_small_imagenet_classes_by_their_wordnet_names(tmp_path):
    from robinterp.data import load_split, write_split

    x, y = np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1])
    write_split(
        tmp_path / "s",
        x,
        y,
        ["n01440764", "n02093256"],
        {},
        extra={
            "classes": [
                {"index": 0, "wnid": "n01440764", "name": "tench, Tinca tinca"},
                {"index": 1, "wnid": "n02093256", "name": "Staffordshire bullterrier"},
            ]
        },
    )
    assert load_split(tmp_path / "s").class_names == ["tench, Tinca tinca", "Staffordshire bullterrier"]
    write_split(tmp_path / "f", x, y, ["cat", "dog"], {})
    assert load_split(tmp_path / "f").class_names == ["cat", "dog"]
