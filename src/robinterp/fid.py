"""FID and Inception feature distances with pytorch-fid's InceptionV3 (paper Tables 2, 3, 5, 6).

Features: pytorch-fid's `InceptionV3` (TF FID weights, `fid_weights.py`), images uint8 NHWC ->
float [0, 1] -> bilinear 299x299 and (-1, 1) inside the model, exactly as
`pytorch_fid.fid_score` feeds PNG files. 2048 = final average pool (FID), 192 = block 1 (after
the second max-pool, 192x35x35) average-pooled (the paper's inversion distance).

Frechet distance: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2). From features we use
tr((S1 S2)^1/2) = nuclear norm of F1 F2^T / sqrt((n1-1)(n2-1)), F = centred features (or their
R factor when n > d): exact, no matrix square root, no eps retry, and cheap for the interval's half-
samples. From moments alone, `frechet_distance` uses the eigenvalues of S1 S2.
"""

from __future__ import annotations

import numpy as np

from .errors import RobinterpError
from .progress import progress

FEATURE_DIMS = (64, 192, 768, 2048)  # pytorch-fid InceptionV3.BLOCK_INDEX_BY_DIM


def load_inception(dims: int, device):
    """pytorch-fid's InceptionV3 returning the block for `dims`; weights must be installed."""
    from pytorch_fid.inception import InceptionV3

    from .fid_weights import require_fid_weights

    if dims not in FEATURE_DIMS:
        raise RobinterpError(f"--dims {dims}: pytorch-fid has feature blocks of {FEATURE_DIMS} dimensions")
    require_fid_weights()
    return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).to(device).eval()


def inception_features(
    images: np.ndarray, dims: int, batch_size: int, device="cpu", model=None, desc: str = "inception"
) -> np.ndarray:
    """N x dims float64 features of uint8 N x H x W x C images (grey images repeated to RGB)."""
    import torch

    images = as_uint8_nhwc(images)
    model = model or load_inception(dims, device)
    out = []
    with torch.inference_mode():
        for start in progress(range(0, len(images), batch_size), desc, unit="batches"):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device)
            x = batch.permute(0, 3, 1, 2).float() / 255.0
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            feats = model(x)[0]
            if feats.shape[2:] != (1, 1):
                feats = torch.nn.functional.adaptive_avg_pool2d(feats, (1, 1))
            out.append(feats.flatten(1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, dims))


def as_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise RobinterpError(f"expected images N x H x W x C (C = 1 or 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise RobinterpError(
            f"expected uint8 images, got {images.dtype}; write generated images as uint8 "
            f"(round(x * 255)) before computing FID"
        )
    return images


# --- distances --------------------------------------------------------------------------------


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance of two Gaussians via the eigenvalues of sigma1 @ sigma2 (float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    eig = np.linalg.eigvals(sigma1 @ sigma2)
    tr_covmean = np.sqrt(eig.astype(complex)).real.sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _factor(feats: np.ndarray) -> np.ndarray:
    """F with F^T F = (X - mean)^T (X - mean); the R factor keeps it d x d when n > d."""
    centred = feats - feats.mean(0)
    return np.linalg.qr(centred, mode="r") if len(feats) > feats.shape[1] else centred


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID of two feature sets, exactly as pytorch-fid's statistics (np.cov, ddof 1) define it."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    n1, n2 = len(f1), len(f2)
    if n1 < 2 or n2 < 2:
        raise RobinterpError(f"FID needs at least 2 images per set (got {n1} and {n2})")
    a1, a2 = _factor(f1), _factor(f2)
    tr1 = (a1 * a1).sum() / (n1 - 1)
    tr2 = (a2 * a2).sum() / (n2 - 1)
    tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


def fid_interval(feats1: np.ndarray, feats2: np.ndarray, rounds: int, seed: int, level: float = 0.95) -> dict:
    """Interval of FID at these set sizes, centred on the estimate: estimate +- z * sd (floored at 0).

    sd comes from half-sampling (a delete-d jackknife, Shao & Wu 1989): each round draws half of
    each set without replacement and computes FID. For an asymptotically linear statistic the
    variance over half-samples of n is s^2 (1/m - 1/n) = s^2 / n at m = n / 2, the variance of the
    full-sample estimate; odd n are corrected by that ratio. No image is repeated, so the rounds
    carry no duplicate-image bias; their mean sits above the estimate (FID falls with n) and only
    their spread is used. The interval is for FID at n (what rows at equal n compare), not for
    the population distance, which lies below by a bias that shrinks with n.
    """
    if rounds <= 0:
        return {"method": "half-sampling", "rounds": 0, "low": None, "high": None, "std": None}
    if rounds < 2:
        raise RobinterpError(f"FID interval: rounds {rounds} gives no spread; use 0 (no interval) or >= 2")
    from statistics import NormalDist

    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    (n1, n2), (m1, m2) = (len(f1), len(f2)), (len(f1) // 2, len(f2) // 2)
    if min(m1, m2) < 2:
        raise RobinterpError(f"FID interval needs at least 4 images per set (got {n1} and {n2})")
    rng = np.random.default_rng(seed)
    values = [
        fid_from_features(f1[rng.choice(n1, m1, replace=False)], f2[rng.choice(n2, m2, replace=False)])
        for _ in progress(range(rounds), "fid interval", unit="rounds")
    ]
    scale = np.sqrt((1 / n1 + 1 / n2) / (1 / m1 - 1 / n1 + 1 / m2 - 1 / n2))  # 1 when both n are even
    estimate = fid_from_features(f1, f2)
    std = float(np.std(values, ddof=1) * scale)
    half_width = NormalDist().inv_cdf((1 + level) / 2) * std
    return {
        "method": "half-sampling",
        "rounds": rounds,
        "level": level,
        "seed": seed,
        "low": max(0.0, estimate - half_width),
        "high": estimate + half_width,
        "std": std,
        "half_sample_mean": float(np.mean(values)),
        "half_sample_n": [m1, m2],
    }


def subsample_features(feats: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded subset of `n` rows without replacement (all rows, in order, when n >= len)."""
    if n >= len(feats):
        return feats
    return feats[np.sort(np.random.default_rng(seed).choice(len(feats), n, replace=False))]


def kid(feats1: np.ndarray, feats2: np.ndarray, subsets: int, subset_size: int, seed: int) -> dict:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, kernel (x.y/d + 1)^3,
    averaged over random subsets (torch-fidelity's defaults); mean and std over subsets."""
    f1, f2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise RobinterpError(f"KID needs at least 2 images per set (got {len(f1)} and {len(f2)})")
    d = f1.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in progress(range(subsets), "kid", unit="subsets"):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))
        values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values)), "subsets": subsets, "subset_size": m}


def feature_distances(feats1: np.ndarray, feats2: np.ndarray) -> np.ndarray:
    """Per-pair L2 distance between matching rows (the paper's inversion distance at 192-d)."""
    if feats1.shape != feats2.shape:
        raise RobinterpError(f"paired feature sets differ in shape: {feats1.shape} vs {feats2.shape}")
    return np.linalg.norm(feats1 - feats2, axis=1)


# --- inputs ---------------------------------------------------------------------------------------


def load_image_set(path, max_images: int | None, seed: int) -> dict:
    """Images for FID from a packed split (folder or manifest), a uint8 .npy, or an .npz written
    by `robinterp inception-features` (then `features` is set instead of `images`).

    `max_images` keeps a seeded random subset (same seed = same images in every run).
    """
    from pathlib import Path

    from .data import load_split
    from .storage import sha256_array

    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise RobinterpError(f"{path}: file not found")
        with np.load(path) as z:
            if "features" not in z:
                raise RobinterpError(f"{path}: no `features` array; write it with `robinterp inception-features`")
            return {
                "path": str(path),
                "features": z["features"],
                "dims": int(z["features"].shape[1]),
                "n": int(len(z["features"])),
                "images_sha256": str(z["images_sha256"]),
            }
    if path.suffix == ".npy":
        if not path.is_file():
            raise RobinterpError(f"{path}: file not found")
        images = np.load(path, mmap_mode="r")
    else:
        images = load_split(path).images
    images = as_uint8_nhwc(images)
    index = np.arange(len(images))
    if max_images is not None and max_images < len(images):
        index = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
    images = np.ascontiguousarray(images[index])
    return {
        "path": str(path),
        "images": images,
        "n": int(len(images)),
        "index": index,
        "images_sha256": sha256_array(images),
    }


def image_set_size(path, max_images: int | None) -> int:
    """How many images `load_image_set(path, max_images)` would hold, read without loading them."""
    from pathlib import Path

    path = Path(path)
    if path.suffix not in (".npy", ".npz") or not path.is_file():
        raise RobinterpError(f"{path}: expected an existing .npy image array or .npz features file")
    if path.suffix == ".npz":
        with np.load(path) as z:
            return int(len(z["features"]))  # feature files are already subset
    n = len(np.load(path, mmap_mode="r"))
    return n if max_images is None else min(n, max_images)


def features_of(image_set: dict, dims: int, batch_size: int, device, model=None) -> np.ndarray:
    if "features" in image_set:
        if image_set["dims"] != dims:
            raise RobinterpError(f"{image_set['path']}: holds {image_set['dims']}-d features, {dims}-d asked")
        return image_set["features"]
    return inception_features(image_set["images"], dims, batch_size, device, model)


def match_size(feats: np.ndarray, like, max_images: int | None, seed: int, name: str) -> np.ndarray:
    """`feats` subsampled (seeded) to as many images as the image set `like` holds: FID falls with
    n, so a baseline is computed at the size of the set it is compared with."""
    n = image_set_size(like, max_images)
    if n > len(feats):
        raise RobinterpError(
            f"--match-n {like}: {n} images, but {name} has only {len(feats)}; "
            f"raise metrics.fid.max_images or generate fewer images"
        )
    return subsample_features(feats, n, seed)
