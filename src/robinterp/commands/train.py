"""Verbs of workflow/rules/train.smk: train."""

from __future__ import annotations

from pathlib import Path

from ..settings import TRAIN_SETTINGS
from ..verbs import verb


@verb("train", "train one variant (standard or adversarial); resumable", settings=TRAIN_SETTINGS)
def train_verb(a):
    from ..data import load_split
    from ..train import TrainConfig, train

    cfg = TrainConfig.from_settings(a.settings)
    meta = train(
        cfg, load_split(a.train), load_split(a.val), a.out, a.state_dir, a.log_csv, extra_meta={"variant": a.variant}
    )
    print(f"train: best epoch {meta['epoch']} val score {meta['metrics']['val_score']:.4f} -> {a.out}")


train_verb.flags = lambda p: (
    p.add_argument("--train", type=Path, required=True, help="packed training split (folder or manifest)"),
    p.add_argument("--val", type=Path, required=True, help="packed split used for model selection"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True, help="selected checkpoint (.pt)"),
    p.add_argument("--log-csv", type=Path, required=True, help="per-epoch metrics"),
    p.add_argument("--state-dir", type=Path, required=True, help="resumable state (not a workflow output)"),
)
