"""One training loop for every dataset, standard or adversarial.

Adversarial training only changes how the batch is produced (`x = attack(model, x, y)`).
State is saved atomically after every epoch into `state_dir` (not a Snakemake output, so a
failed job keeps it); rerunning resumes from the last finished epoch and, on CPU, ends with
the same weights as an uninterrupted run. The declared output is the selected checkpoint
(best validation score; by default, as the paper chose for its two models, clean accuracy for
standard training and the mean of clean and adversarial accuracy for adversarial training).

Under `torchrun` (WORLD_SIZE > 1) the same loop runs data-parallel (`distributed.py`): each
rank trains on its slice of every global batch, metrics are summed over ranks, and only rank 0
writes state, log and checkpoint; a run resumes from the same state file with any rank count.
Speed switches (config `train:`): `amp` (bf16 autocast), `channels_last`, `fused` optimiser
kernels and `compile` (torch.compile); all but `fused` are off by default (docs/scale.md).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import distributed, storage
from .attacks import AttackConfig, SampleNoise, adversarial_examples, sample_keys
from .augment import AugmentConfig, augment
from .checkpoints import save_checkpoint
from .data import Split
from .device import DeviceData, announce, autocast, describe, resolve_device
from .distributed import Ranks
from .errors import RobinterpError
from .evaluate import accuracy
from .models import build_model
from .progress import progress
from .settings import TRAIN_SETTINGS, check_settings, properties, result_settings


@dataclass(frozen=True)
class TrainConfig:
    """One variant's training, from the train verb's settings (settings.TRAIN_SETTINGS): fields keep their key
    names in the `model` and `train` blocks; `attack` and `seed` are the variant's, `eval_amp`
    is evaluation.amp. `results` is what the trained weights depend on: the resume key."""

    arch: str
    width: float
    epochs: int
    batch_size: int
    optimizer: str  # sgd | adam
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # cosine | constant | step
    t_max: int | None  # cosine period in epochs; None = epochs (author: 200 for 100 epochs)
    milestones: tuple  # step schedule: epochs where lr *= gamma
    gamma: float
    grad_clip_value: float | None  # author: 0.1 (clip_grad_value_)
    augment: AugmentConfig
    attack: AttackConfig | None  # None = standard training
    selection_attack: AttackConfig | None  # attack behind the validation adv accuracy
    selection_metric: str  # auto (clean without a training attack, else mean: the paper) | mean | clean | adv
    selection_max_images: int | None  # bound the per-epoch adversarial validation cost
    eval_batch_size: int
    seed: int
    amp: bool  # bf16 autocast of the training steps (CUDA only)
    eval_amp: bool  # bf16 validation for model selection (evaluation.amp; fp32 by default)
    channels_last: bool
    fused: bool  # fused optimiser kernels (CUDA only; CPU keeps the reference kernels)
    compile: bool  # torch.compile the model (pays compilation in the first epoch)
    sync_batchnorm: bool  # multi-GPU: BatchNorm statistics over the global batch
    device: str
    mean: tuple | None  # input normalisation inside the model; None = train split's statistics
    std: tuple | None

    results: dict  # the settings without their execution-only keys (robinterp.settings.result_settings)

    @classmethod
    def from_settings(cls, s: dict) -> "TrainConfig":
        """From the verb's settings, validated and filled (robinterp.settings.check_settings)."""
        model, train = s["model"], s["train"]
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {
            **{k: v for k, v in train.items() if k in fields},
            "arch": model["arch"],
            "width": model["width"],
            "mean": tuple(model["mean"]) if model.get("mean") else None,
            "std": tuple(model["std"]) if model.get("std") else None,
            "augment": AugmentConfig.from_block(train["augment"]),
            "attack": AttackConfig.from_block(s["variant.attack"]),
            "selection_attack": AttackConfig.from_block(train["selection_attack"]),
            "milestones": tuple(train["milestones"] or ()),
            "seed": s["variant.seed"],
            "eval_amp": s["evaluation.amp"],
            "device": s["device"],
            "results": result_settings(s),
        }
        return cls(**values)

    @classmethod
    def of(cls, **keys) -> "TrainConfig":
        """From keys of its blocks by their own names (`lr`, `arch`, `attack`, `seed`, `eval_amp`,
        `device`; tests and benchmarks): validated and filled as the verb's settings are."""
        own = {"attack": "variant.attack", "seed": "variant.seed", "eval_amp": "evaluation.amp", "device": "device"}
        settings = {section: keys.pop(k) for k, section in own.items() if k in keys}
        model_keys = set(properties("model"))
        settings["model"] = {k: keys.pop(k) for k in list(keys) if k in model_keys}
        settings["train"] = keys
        return cls.from_settings(check_settings(TRAIN_SETTINGS, settings, "train settings"))

    @classmethod
    def from_dict(cls, keys: dict | None) -> "TrainConfig":
        return cls.of(**dict(keys or {}))

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "results"}

    @property
    def selection(self) -> str:
        """The score behind model selection: `selection_metric` with auto resolved as the paper chose
        for each of its models (the standard model by accuracy, the robust one by the mean)."""
        if self.selection_metric != "auto":
            return self.selection_metric
        return "clean" if self.attack is None else "mean"


def make_optimizer(cfg: TrainConfig, model, device: torch.device = torch.device("cpu")):
    fused = {"fused": True} if cfg.fused and device.type == "cuda" else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    raise RobinterpError(f"optimizer {cfg.optimizer!r}: choose sgd or adam")


def make_schedule(cfg: TrainConfig, opt):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max or cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    raise RobinterpError(f"schedule {cfg.schedule!r}: choose cosine, step or constant")


def selection_score(metric: str, clean: float, adv: float | None) -> float:
    adv = clean if adv is None else adv
    return {"mean": (clean + adv) / 2, "clean": clean, "adv": adv}[metric]


def train_step(
    cfg: TrainConfig,
    model,
    step_model,
    attack_model,
    opt,
    x,
    y,
    mean_over: float,
    noise: SampleNoise | None,
    sums: torch.Tensor,
) -> None:
    """One optimiser step on (x, y), made adversarial when `cfg.attack` is set.

    `model` owns the weights, `step_model` runs the step (DDP and/or compiled), `attack_model`
    the attack. The loss is the sum over this rank's samples / `mean_over`: global batch size /
    world size, because DDP averages gradients over ranks. `noise` draws each sample's random
    start. `sums` (loss, clean, adv) accumulate on the device, so no step waits for the GPU.
    """
    device = x.device
    with autocast(device, cfg.amp):
        # --- produce the batch: clean, or adversarial under the training attack ---
        if cfg.attack is not None:
            model.eval()  # the batch's clean accuracy, without moving BatchNorm statistics
            with torch.inference_mode():
                sums[1] += (attack_model(x).argmax(1) == y).sum()
            x = adversarial_examples(attack_model, x, y, cfg.attack, generator=noise)
            model.train()
        # --- step ---
        logits = step_model(x)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
    opt.zero_grad(set_to_none=True)
    (loss_sum / mean_over).backward()
    if cfg.grad_clip_value:
        torch.nn.utils.clip_grad_value_(model.parameters(), cfg.grad_clip_value)
    opt.step()
    sums[2 if cfg.attack else 1] += (logits.argmax(1) == y).sum()
    sums[0] += loss_sum.detach().double()


def train(
    cfg: TrainConfig,
    train_split: Split,
    val_split: Split,
    out: Path,
    state_dir: Path,
    log_csv: Path,
    extra_meta: dict | None = None,
) -> dict:
    """Train one variant; under torchrun every rank calls this and rank 0 writes the outputs."""
    ranks = distributed.ranks_from_env()
    device = distributed.setup(ranks, resolve_device(cfg.device))
    if ranks.is_main:
        announce(describe(device))
    meta = _train(cfg, ranks, device, train_split, val_split, out, state_dir, log_csv, extra_meta)
    distributed.teardown(ranks)  # after rank 0 has written; a failing rank exits without it
    return meta


def _train(
    cfg: TrainConfig,
    ranks: Ranks,
    device: torch.device,
    train_split: Split,
    val_split: Split,
    out: Path,
    state_dir: Path,
    log_csv: Path,
    extra_meta: dict | None,
) -> dict:
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model, arch = _model(cfg, ranks, device, train_split)
    opt = make_optimizer(cfg, model, device)
    sched = make_schedule(cfg, opt)
    train_data = DeviceData(train_split, device, cfg.channels_last)
    val_data = DeviceData(val_split, device, cfg.channels_last)
    state_path, best_path = Path(state_dir) / "state.pt", Path(state_dir) / "best_model.pt"
    resume_key = {"config": cfg.results, "data_sha256": {"train": train_split.sha256, "val": val_split.sha256}}
    start, best, rows = _resume(cfg, ranks, model, opt, sched, state_path, resume_key)
    step_model, attack_model = _step_models(cfg, ranks, model, device)
    # a score of clean accuracy alone needs no adversarial validation (PGD-k costs k passes per image)
    selection_attack = None if cfg.selection == "clean" else cfg.selection_attack
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        seed = cfg.seed * 100_003 + epoch  # per epoch: a resumed epoch repeats exactly
        lr = opt.param_groups[0]["lr"]
        total = train_epoch(cfg, epoch, seed, ranks, model, step_model, attack_model, opt, train_data)
        sched.step()

        # --- validate and select (clean accuracy, or the mean of clean and adversarial: cfg.selection) ---
        val = accuracy(
            attack_model,
            val_data,
            selection_attack,
            cfg.eval_batch_size,
            cfg.selection_max_images,
            cfg.eval_amp,
            seed=cfg.seed,
            ranks=ranks,
        )
        score = selection_score(cfg.selection, val["clean_acc"], val["adv_acc"])
        row = _log_row(epoch, lr, total, val, score, round(time.time() - t0, 3), cfg.attack is not None)
        rows.append(row)
        improved = score > best["score"]
        if improved:
            best = {"score": score, "epoch": epoch + 1, "metrics": row}
        _say(ranks, _epoch_line(row, cfg.epochs, best["epoch"]))
        if ranks.is_main:  # every rank holds the same weights and metrics; rank 0 writes them
            _save_state(
                state_path,
                best_path if improved else None,
                model,
                opt,
                sched,
                {"epoch": epoch + 1, "best": best, "log": rows, "resume_key": resume_key},
            )
            _write_log(log_csv, rows)

    if best["epoch"] is None:
        raise RobinterpError("training ran no epoch (epochs must be >= 1)")
    meta = {
        "config": cfg.to_dict(),
        "epoch": best["epoch"],
        "metrics": best["metrics"],
        "data_sha256": {"train": train_split.sha256, "val": val_split.sha256},
        "provenance": storage.provenance(world_size=ranks.world_size, device=describe(device), **(extra_meta or {})),
    }
    if ranks.is_main:
        model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
        _write_log(log_csv, rows)
        save_checkpoint(out, model, arch, train_split.classes, **meta)
    return meta


def _log_row(epoch: int, lr: float, total: dict, val: dict, score: float, seconds: float, adversarial: bool) -> dict:
    """One line of the training log: the epoch's training sums per image and its validation."""
    seen = max(total["seen"], 1)
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": total["loss"] / seen,
        "train_clean_acc": total["clean"] / seen,
        "train_adv_acc": total["adv"] / seen if adversarial else None,
        "val_clean_acc": val["clean_acc"],
        "val_adv_acc": val["adv_acc"],
        "val_score": score,
        "seconds": seconds,
    }


def train_epoch(
    cfg: TrainConfig, epoch: int, seed: int, ranks: Ranks, model, step_model, attack_model, opt, train_data: DeviceData
) -> dict:
    """One pass over the training split in a seeded order: each rank steps on its slice of every
    global batch. Returns the loss and accuracy sums over all ranks and the images seen."""
    n, device = len(train_data), next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)  # permutation + augmentation, shared by all ranks
    perm = torch.randperm(n, generator=gen)
    model.train()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, clean, adv: no sync per step
    first_bad = torch.tensor(-1, device=device)  # the first batch whose loss is not finite, found without a sync
    seen = 0
    bar = progress(
        range(0, n, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batches", silent=not ranks.is_main
    )
    for i in bar:
        x, y = train_data.batch(perm[i : i + cfg.batch_size])
        x = augment(x, cfg.augment, gen)  # the global batch, so every rank draws the same numbers
        m = len(y)
        if m < ranks.world_size:
            continue  # a last batch smaller than the rank count is dropped (by every rank)
        shard = ranks.shard(m)
        x, y = x[shard], y[shard]
        # random starts keyed by (epoch, position in the epoch): the same with any rank count
        noise = SampleNoise(sample_keys(seed, range(i + shard.start, i + shard.stop))) if cfg.attack else None
        train_step(cfg, model, step_model, attack_model, opt, x, y, m / ranks.world_size, noise, sums)
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(sums[0]), i // cfg.batch_size, first_bad)
        seen += len(y)
    total = distributed.all_reduce_sums(
        {"loss": sums[0].item(), "clean": sums[1].item(), "adv": sums[2].item(), "seen": seen}, ranks, device
    )
    if not math.isfinite(total["loss"]):  # on every rank: the sum is NaN wherever one rank's loss is
        raise RobinterpError(_diverged(cfg, total["loss"], epoch, int(first_bad), math.ceil(n / cfg.batch_size)))
    return total


def _model(cfg: TrainConfig, ranks: Ranks, device: torch.device, train_split: Split) -> tuple[torch.nn.Module, dict]:
    """The untrained network (normalising with the config's or the training split's statistics) and
    its `arch` record."""
    mean = list(cfg.mean or train_split.manifest["mean"])
    std = list(cfg.std or train_split.manifest["std"])
    channels = train_split.image_shape[0]
    for key, values in (("model.mean", mean), ("model.std", std)):
        if len(values) != channels:
            raise RobinterpError(
                f"train config: {key} {values} has {len(values)} value(s), the images of "
                f"{train_split.path} have {channels} channels; give one per channel, or null for "
                "the training split's statistics"
            )
    arch = {
        "name": cfg.arch,
        "width": cfg.width,
        "num_classes": train_split.num_classes,
        "mean": mean,
        "std": std,
        "image_shape": list(train_split.image_shape),
    }
    model = build_model(cfg.arch, train_split.num_classes, mean, std, cfg.width).to(device)
    if ranks.distributed and cfg.sync_batchnorm:
        model = distributed.convert_sync_batchnorm(model, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, arch


def _resume(
    cfg: TrainConfig, ranks: Ranks, model, opt, sched, state_path: Path, resume_key: dict
) -> tuple[int, dict, list[dict]]:
    """(first epoch to run, best so far, log rows): from the last finished epoch where the saved
    state belongs to this config and data, else from the start."""
    start, best, rows = 0, {"score": -math.inf, "epoch": None, "metrics": None}, []
    if not state_path.is_file():
        return start, best, rows
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("resume_key") != resume_key:
        _say(ranks, f"resume: {state_path} was made with another config or data; starting afresh")
        return start, best, rows
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    start, best, rows = state["epoch"], state["best"], state["log"]
    # Snakemake deletes a job's log before it reruns: the earlier epochs' lines come back from the state
    top = {"val_score": -math.inf, "epoch": None}
    for r in rows:
        top = r if r["val_score"] > top["val_score"] else top
        _say(ranks, _epoch_line(r, cfg.epochs, top["epoch"]))
    _say(ranks, f"resumed at epoch {start}/{cfg.epochs} from {state_path}")
    return start, best, rows


def _step_models(cfg: TrainConfig, ranks: Ranks, model, device: torch.device):
    """(step_model, attack_model): `model` owns the weights (attacks, validation, checkpoints);
    `step_model` takes the steps (DDP across ranks), both compiled with `compile`."""
    step_model = model
    if ranks.distributed:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=not cfg.sync_batchnorm
        )
    attack_model = model
    if cfg.compile:
        step_model, attack_model = torch.compile(step_model), torch.compile(model)
    return step_model, attack_model


def _save_state(state_path: Path, best_path: Path | None, model, opt, sched, progress_so_far: dict) -> None:
    """The best weights (when this epoch improved: `best_path`) and the resumable state, atomically."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if best_path is not None:
        with storage.atomic_path(best_path) as tmp:
            torch.save(weights, tmp)
    with storage.atomic_path(state_path) as tmp:
        torch.save(
            {"model": weights, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **progress_so_far}, tmp
        )


def _diverged(cfg: TrainConfig, loss: float, epoch: int, batch: int, batches: int) -> str:
    """One line: where the loss stopped being a number, and what usually makes it so."""
    where = f"batch {batch + 1} of {batches}" if batch >= 0 else f"one of its {batches} batches (on another rank)"
    causes = [
        f"a learning rate too high (train.lr {cfg.lr}"
        + ("; or clip gradients: train.grad_clip_value)" if cfg.grad_clip_value is None else ")")
    ]
    if cfg.std:
        causes.append(f"a tiny normalisation std (model.std {list(cfg.std)})")
    if cfg.attack:
        causes.append(f"the training attack's steps (attack.eps {cfg.attack.eps}, step_size {cfg.attack.step_size})")
    if cfg.amp:
        causes.append("bf16 overflow (train.amp: true)")
    return (
        f"train: the loss is {loss} at epoch {epoch + 1}, {where}; stopped, nothing of this epoch is saved. "
        f"Likely causes: {', '.join(causes)}"
    )


def _say(ranks: Ranks, line: str) -> None:
    if ranks.is_main:
        print(line, flush=True)


def _epoch_line(row: dict, epochs: int, best_epoch) -> str:
    return (
        f"epoch {row['epoch']:>3}/{epochs} loss {row['train_loss']:.4f} val clean {row['val_clean_acc']:.4f} "
        f"adv {_fmt(row['val_adv_acc'])} best@{best_epoch} {row['seconds']:.1f}s"
    )


def _fmt(v):
    return "  -   " if v is None else f"{v:.4f}"


def _write_log(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    lines = [",".join(cols)] + [",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows]
    storage.write_text(path, "\n".join(lines) + "\n")
