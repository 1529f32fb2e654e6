"""Peak resident memory of every compute verb at N and k*N images (same batch sizes).

Each verb runs as its own process (`robinterp <verb>` under a small runner) on synthetic inputs of one
shape: a packed test and train split of `--size` px images, an untrained checkpoint of `--arch`
at `--width`, uint8 image arrays and an attributions file. Two peaks per run: the verb's (VmHWM,
reset once torch and the command modules are imported) and the whole process's (ru_maxrss via
os.wait4: what a job's memory limit must hold). A verb that batches its work grows only by
its data (the images, their features and its outputs); one that pushes all N images through the
model at once grows by N x the network's activations.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/peak_memory.py --arch resnet18_cifar --width 1 \
        --size 32 --n 10 40 --batch-is-n --out benchmarks/results/peak_memory_cifar_cpu.json

(docs/scale.md has the paper-shape runs and how they extrapolate to the paper's counts.)

The Inception verbs need pytorch-fid's weights: installed with `robinterp install-fid-weights`
(or pass --torch-home with them under hub/checkpoints); without them they are skipped.
tests/test_peak_memory.py runs this at a small width and asserts the bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20

# verb -> what scales with N (documentation for the table; the settings are in `verb_argv`)
SCALED = {
    "evaluate": "test images attacked (PGD, 1 step)",
    "ig": "explained images",
    "shap": "explained images and background images",
    "class-generation": "generated images",
    "inversion": "inverted images (image and noise sources)",
    "feature-vis": "test images ranked by activation",
    "interpretability-metrics": "test images (alignment), attributed images, sensitivity images",
    "inception-features": "images",
    "fid": "generated images (Inception features) against as many real features",
    "inversion-distance": "target, inverted and source images",
}
INCEPTION_VERBS = ("inception-features", "fid", "inversion-distance")


def make_inputs(root: Path, n: int, *, arch: str, width: float, size: int, classes: int, seed: int = 0) -> Path:
    """A test split of n images (and a train split of n), a checkpoint, uint8 arrays of n images,
    an attributions file of n images and Inception features of n images for fid's real side."""
    import torch

    from robinterp.checkpoints import save_checkpoint
    from robinterp.data import write_split
    from robinterp.models import build_model

    rng = np.random.default_rng(seed)
    classes = min(classes, n)  # every class needs an image
    names = [f"c{k}" for k in range(classes)]
    for split in ("test", "train"):
        labels = np.arange(n) % classes
        images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        write_split(root / split, images, labels, names, {"kind": "synthetic"})
    torch.manual_seed(seed)
    mean, std = [0.5] * 3, [0.25] * 3
    model = build_model(arch, classes, mean, std, width).eval()
    save_checkpoint(
        root / "model.pt",
        model,
        {"name": arch, "width": width, "num_classes": classes, "mean": mean, "std": std},
        names,
        epoch=0,
        metrics={},
    )
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    np.save(root / "images.npy", images)
    x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.savez(
        root / "attributions.npz",
        images=x,
        attributions=rng.normal(size=x.shape).astype(np.float32),
        labels=np.arange(n) % classes,
        preds=np.arange(n) % classes,
        output=np.array("probability"),
    )
    np.savez(
        root / "features.npz",
        features=rng.normal(size=(n, 2048)),
        index=np.arange(n),
        images_sha256="synthetic",
        source="synthetic",
    )
    return root


def verb_argv(verb: str, inputs: Path, out: Path, n: int, classes: int, batch_size: int, steps: int = 1) -> list[str]:
    """`robinterp` arguments for `verb` scaled to n images, every batch size = batch_size, `steps`
    iterations of every PGD-based method (0: only the verbs' passes outside PGD)."""
    i, b = inputs, batch_size
    settings = lambda section, d: ["--settings", json.dumps({section: d, "device": "cpu"})]  # noqa: E731
    model = ["--checkpoint", str(i / "model.pt")]
    analysis = [*model, "--data", str(i / "test"), "--meta", str(out / "meta.json")]
    if verb == "evaluate":
        # PGD's memory; AutoAttack's batches are the same (its host copies: docs/scale.md)
        return [
            *model,
            "--data",
            str(i / "test"),
            "--out",
            str(out / "accuracy.json"),
            "--settings",
            json.dumps(
                {
                    "eval_attack": {"norm": "l2", "eps": 0.5, "step_size": 0.1, "steps": steps},
                    "evaluation": {"batch_size": b, "autoattack": False},
                    "device": "cpu",
                }
            ),
        ]
    if verb == "ig":
        return [
            *analysis,
            *settings("analyses.ig", {"num_images": n, "steps": 1, "trials": 1, "batch_size": b}),
            "--out",
            str(out / "attributions.npz"),
        ]
    if verb == "shap":
        return [
            *analysis,
            "--train",
            str(i / "train"),
            "--out",
            str(out / "attributions.npz"),
            *settings("analyses.shap", {"num_images": n, "background": n, "nsamples": 1, "batch_size": b}),
        ]
    if verb == "class-generation":
        return [
            *analysis,
            *settings(
                "analyses.class_generation",
                {
                    "per_class": max(1, n // classes),
                    "downsample": 4,
                    "eps": 30,
                    "step_size": 0.5,
                    "steps": steps,
                    "batch_size": b,
                },
            ),
            *(x for name in ("images", "seeds", "labels") for x in (f"--out-{name}", str(out / f"{name}.npy"))),
        ]
    if verb == "inversion":
        return [
            *analysis,
            *settings("analyses.inversion", {"num_images": max(1, n // 2), "steps": steps, "batch_size": b}),
            *(x for name in ("targets", "sources", "inverted") for x in (f"--out-{name}", str(out / f"{name}.npy"))),
        ]
    if verb == "feature-vis":
        return [
            *analysis,
            *settings("analyses.feature_vis", {"num_neurons": 2, "steps": steps, "top_k": 2, "batch_size": b}),
            "--out",
            str(out / "features.npz"),
        ]
    if verb == "interpretability-metrics":
        return [
            *model,
            "--test",
            str(i / "test"),
            "--attributions",
            f"ig={i / 'attributions.npz'}",
            "--out",
            str(out / "metrics.json"),
            *settings(
                "metrics.interpretability",
                {
                    "sample": n,
                    "steps": 1,
                    "infidelity_samples": 2,
                    "sensitivity_images": n,
                    "sensitivity_samples": 2,
                    "explainer": "saliency",
                    "batch_size": b,
                    "bootstrap": 20,
                    "faithfulness_runs": 4,
                    "lipschitz_samples": 2,
                },
            ),
        ]
    if verb == "inception-features":
        return [
            "--images",
            str(i / "test"),
            "--set",
            f"metrics.fid.batch_size={b}",
            "--set",
            "device=cpu",
            "--out",
            str(out / "features.npz"),
        ]
    if verb == "fid":
        return [
            "--real",
            str(i / "features.npz"),
            "--fake",
            str(i / "images.npy"),
            *settings("metrics.fid", {"batch_size": b, "interval_rounds": 0}),
            "--out",
            str(out / "fid.json"),
        ]
    if verb == "inversion-distance":
        return [
            "--targets",
            str(i / "images.npy"),
            "--inverted",
            str(i / "images.npy"),
            "--sources",
            str(i / "images.npy"),
            *settings("metrics.inversion", {"batch_size": b, "bootstrap": 20}),
            "--out",
            str(out / "distance.json"),
        ]
    raise ValueError(f"unknown verb {verb!r}; choose from {sorted(SCALED)}")


# Runs one verb after the imports every verb shares, with the peak-RSS mark reset there
# (/proc/self/clear_refs "5"): the peak then belongs to the verb's own work, not to a transient
# while torch and the command modules load (which hides ~100 MB of work at small N).
_RUNNER = """
import os, sys
import numpy, torch
from robinterp.cli import build_parser, main
build_parser()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
rc = main(sys.argv[1:])
with open(os.environ["PEAK_RSS_FILE"], "w") as f:
    f.write(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
sys.exit(rc)
"""


def peak_rss(argv: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """(peak RSS of the verb's work, of the whole process, both MB; seconds) of one
    `robinterp ...` process; raises if it fails."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".peak") as mark:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT / "src"),
            "PEAK_RSS_FILE": mark.name,
            **(env or {}),
        }
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(
                f"robinterp {argv[0]} exited {os.waitstatus_to_exitcode(status)}:\n{output.decode()[-3000:]}"
            )
        verb_kb = int(Path(mark.name).read_text())
    return verb_kb / 1024, usage.ru_maxrss / 1024, time.perf_counter() - start  # both kB on Linux


def measure(
    verbs,
    counts,
    root: Path,
    *,
    arch: str,
    width: float,
    size: int,
    classes: int,
    batch_size: int,
    torch_home: Path | None = None,
    mmap_threshold: int | None = None,
    steps: int = 1,
    batch_is_n: bool = False,
) -> dict:
    """{verb: {n: {"peak_rss_mb", "process_peak_rss_mb", "seconds"}}} for every verb at every count.

    `mmap_threshold` (bytes) fixes glibc's mmap threshold in the verbs: freed batch buffers then
    go back to the system at once instead of lingering for the first few batches (tens of MB that
    stop growing after a few batches), so peak RSS follows live memory."""
    env = {"TORCH_HOME": str(torch_home)} if torch_home else {}
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    results = {v: {} for v in verbs}
    for n in counts:
        inputs = make_inputs(root / f"inputs_{n}", n, arch=arch, width=width, size=size, classes=classes)
        for v in verbs:
            out = root / f"out_{n}" / v
            out.mkdir(parents=True, exist_ok=True)
            b = n if batch_is_n else batch_size
            mb, process_mb, sec = peak_rss([v, *verb_argv(v, inputs, out, n, classes, b, steps)], env)
            results[v][n] = {
                "peak_rss_mb": round(mb, 1),
                "process_peak_rss_mb": round(process_mb, 1),
                "seconds": round(sec, 1),
            }
    return results


def image_mb(n: int, size: int) -> float:
    """One float32 copy of n RGB images of size x size: the unit a verb's data grows by."""
    return n * 3 * size * size * 4 / MB


def fid_weights_ready(torch_home: Path | None) -> bool:
    if torch_home is not None:
        os.environ["TORCH_HOME"] = str(torch_home)
    from robinterp.fid_weights import fid_weights_path

    return fid_weights_path().is_file()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet18_cifar")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--n", type=int, nargs="+", default=[40, 320], help="image counts")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--verbs", nargs="+", default=list(SCALED))
    p.add_argument("--torch-home", type=Path, default=None, help="holds pytorch-fid's weights (hub/checkpoints)")
    p.add_argument(
        "--batch-is-n",
        action="store_true",
        help="batch size = N: one batch per run, so the growth is the activations of one batch",
    )
    p.add_argument("--steps", type=int, default=1, help="PGD iterations of evaluate and the visualisations")
    p.add_argument("--mmap-threshold", type=int, default=None, help="fix glibc's mmap threshold (bytes)")
    p.add_argument("--work", type=Path, default=Path("/tmp/robinterp_peak_memory"))
    p.add_argument("--out", type=Path, default=None, help="JSON of every measurement")
    a = p.parse_args()
    verbs = [v for v in a.verbs if v not in INCEPTION_VERBS or fid_weights_ready(a.torch_home)]
    skipped = sorted(set(a.verbs) - set(verbs))
    res = measure(
        verbs,
        a.n,
        a.work,
        arch=a.arch,
        width=a.width,
        size=a.size,
        classes=a.classes,
        batch_size=a.batch_size,
        torch_home=a.torch_home,
        mmap_threshold=a.mmap_threshold,
        steps=a.steps,
        batch_is_n=a.batch_is_n,
    )
    n0, n1 = min(a.n), max(a.n)
    batch = "batch = N" if a.batch_is_n else f"batch {a.batch_size}"
    print(f"{a.arch} width {a.width} at {a.size} px, {batch}; the verb's peak RSS (MB) at N = {a.n}")
    for v, by_n in res.items():
        per_image = (by_n[n1]["peak_rss_mb"] - by_n[n0]["peak_rss_mb"]) / (n1 - n0) if n1 > n0 else 0.0
        by_n["mb_per_image"] = round(per_image, 4)
        cells = "  ".join(f"{by_n[n]['peak_rss_mb']:8.1f}" for n in a.n)
        print(f"{v:26s} {cells}   {per_image * 1024:8.1f} kB/image  ({SCALED[v]})")
    if skipped:
        print(f"skipped (no Inception weights): {', '.join(skipped)}")
    if a.out:
        import torch

        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "machine": f"{platform.machine()} {os.cpu_count()} cores",
                    "torch": torch.__version__,
                    "arch": a.arch,
                    "width": a.width,
                    "size": a.size,
                    "classes": a.classes,
                    "batch_size": a.batch_size,
                    "counts": a.n,
                    "mmap_threshold": a.mmap_threshold,
                    "steps": a.steps,
                    "batch_is_n": a.batch_is_n,
                    "float32_image_mb": image_mb(1, a.size),
                    "scaled": {v: SCALED[v] for v in res},
                    "results": res,
                    "skipped": skipped,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
