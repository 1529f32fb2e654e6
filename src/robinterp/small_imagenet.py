"""Small ImageNet 150 (paper section 2.1.2): a 128x128 subset of a user's own ILSVRC copy.

`build(cfg, out_dir, workers)` writes `train/`, `val/` and `test/` in the packed format:

- classes: `cfg.classes` wnids drawn at random (seeded) from the train folder, or a class list;
  label = index in sorted-wnid order of the chosen classes;
- train / val: `train_per_class` + `val_per_class` images per class drawn without overlap from
  the ILSVRC train folder (val is for model selection);
- test: the ILSVRC validation images of those classes (`test_per_class`, 50 = all of them)
  followed by ImageNetV2 TopImages (`imagenetv2_per_class`, 10) when given: 9000 images;
- `validation: ilsvrc_val` is the paper's own protocol: val = the ILSVRC validation part of test.

Images are listed and decoded by the rules every source shares (image_folder.py): EXIF
orientation applied, 16-bit and float images scaled, RGB, resized (shorter side), centre-cropped.
Work is split into one job per class and source; worker processes write straight into
pre-allocated memory-mapped arrays, so memory stays bounded and the result does not depend on
the number of workers. An unreadable image is skipped and replaced by the next candidate of the
same class; the manifests list every source file per row and every skipped file.
Dot-files and dot-folders (macOS `._<name>` AppleDouble files, `.ipynb_checkpoints`) and
`__MACOSX` folders are not part of the data and are never listed; nor is anything but a regular
file (or a link to one). Sources that share image files
(`val_dir` = `train_dir`, say) are refused, and no source file lands in two splits.
Run: `robinterp build-small-imagenet --train-dir ... --val-dir ... --out-dir ...`.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data import write_split
from .errors import RobinterpError
from .image_folder import ImageError, decode_image, hidden, walk_images
from .progress import progress
from .settings import Settings
from .sources import channel_stats

WNID = re.compile(r"^n\d{8}$")
TRAIN_LAYOUT = "<train_dir>/<wnid>/<image>.JPEG (one sub-folder per WordNet id, e.g. n01440764/)"
VAL_FOLDER_LAYOUT = "<val_dir>/<wnid>/<image>.JPEG (per-class folders, val_labels: null)"
VAL_FLAT_LAYOUT = "<val_dir>/ILSVRC2012_val_00000001.JPEG ... + val_labels: LOC_val_solution.csv"
V2_LAYOUT = "<imagenetv2_dir>/<class index 0-999>/<image>.jpeg (ImageNetV2 TopImages)"
PARTS = ("train", "ilsvrc_val", "imagenetv2")  # job kinds; also seeds each job's draw


@dataclass(frozen=True)
class BuildConfig(Settings):
    SECTION = "small_imagenet_source"

    train_dir: str
    val_dir: str
    val_labels: str | None  # LOC_val_solution.csv for the flat validation layout
    imagenetv2_dir: str | None  # ImageNetV2 TopImages, optional
    synset_mapping: str | None  # LOC_synset_mapping.txt: "n01440764 tench, Tinca tinca"
    class_list: str | None  # one wnid per line; replaces the random draw of `classes`
    classes: int
    train_per_class: int
    val_per_class: int  # held out of the train folder (validation: train_holdout)
    test_per_class: int  # ILSVRC validation images per class (50 = all)
    imagenetv2_per_class: int  # TopImages has 10 per class
    image_size: int
    validation: str  # train_holdout | ilsvrc_val (the paper: val = ILSVRC val)
    seed: int


def resolve_workers(workers: int) -> int:
    """Decoding processes: workers >= 1 as given; 0 = every CPU core this process may use."""
    if workers == 0:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers < 0:
        raise RobinterpError(f"workers: {workers}; give the number of decoding processes (>= 1), or 0 for all cores")
    return workers


# --- reading the folder layouts ----------------------------------------------------------------


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not hidden(p.name)]


def _images(folder: Path) -> list[Path]:
    """The image files of one folder (not its sub-folders), by the rules of every source."""
    return walk_images(folder, recursive=False)[0]


def scan_train(train_dir: str | Path) -> dict[str, list[Path]]:
    """wnid -> sorted image files of every class folder in the ILSVRC train folder."""
    root = Path(train_dir)
    if not root.is_dir():
        raise RobinterpError(f"train_dir {root}: not a folder; expected {TRAIN_LAYOUT}")
    subdirs = sorted(p for p in _entries(root) if p.is_dir())
    wnids = [p.name for p in subdirs if WNID.match(p.name)]
    if not wnids:
        tars = list(root.glob("n*.tar"))
        hint = (
            f"found {len(tars)} per-class .tar archives: extract each into its own folder"
            if tars
            else f"found {len(_images(root))} images and {len(subdirs)} other folders at the top level"
        )
        raise RobinterpError(f"train_dir {root}: no WordNet-id class folders ({hint}); expected {TRAIN_LAYOUT}")
    return {w: _images(root / w) for w in wnids}


def scan_val(val_dir: str | Path, val_labels: str | None) -> dict[str, list[Path]]:
    """wnid -> ILSVRC validation images, from per-class folders or a flat folder + CSV."""
    root = Path(val_dir)
    if not root.is_dir():
        raise RobinterpError(f"val_dir {root}: not a folder; expected {VAL_FOLDER_LAYOUT} or {VAL_FLAT_LAYOUT}")
    flat = _images(root)
    class_dirs = sorted(p.name for p in _entries(root) if p.is_dir() and WNID.match(p.name))
    if val_labels is None:
        if not class_dirs:
            raise RobinterpError(
                f"val_dir {root}: no per-class folders (found {len(flat)} images at the top "
                f"level: the flat layout needs val_labels); expected {VAL_FOLDER_LAYOUT}"
            )
        return {w: _images(root / w) for w in class_dirs}
    if not flat:
        raise RobinterpError(
            f"val_dir {root}: no images at the top level (found {len(class_dirs)} class "
            f"folders: set val_labels: null for that layout); expected {VAL_FLAT_LAYOUT}"
        )
    labels = read_val_labels(val_labels)
    out: dict[str, list[Path]] = {}
    for path in flat:
        if path.stem in labels:
            out.setdefault(labels[path.stem], []).append(path)
    if not out:
        raise RobinterpError(
            f"val_labels {val_labels}: none of its ImageIds names an image in {root}; expected {VAL_FLAT_LAYOUT}"
        )
    return out


def read_val_labels(path: str | Path) -> dict[str, str]:
    """LOC_val_solution.csv: ImageId -> wnid (first token of PredictionString)."""
    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"val_labels {path}: file not found; expected LOC_val_solution.csv")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM (Excel's "CSV UTF-8") is not data
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise RobinterpError(
            f"val_labels {path}: expected the header 'ImageId,PredictionString' "
            "(LOC_val_solution.csv from the Kaggle ILSVRC download)"
        )
    labels = {}
    for i, row in enumerate(rows[1:], start=2):
        tokens = row[1].split() if len(row) > 1 else []
        if not tokens or not WNID.match(tokens[0]):
            raise RobinterpError(f"val_labels {path}, line {i}: expected 'ImageId,<wnid> x0 y0 x1 y1 ...', got {row}")
        labels[row[0].strip()] = tokens[0]
    return labels


def scan_imagenetv2(v2_dir: str | Path, index_wnids: list[str]) -> dict[str, list[Path]]:
    """wnid -> TopImages files; folder k holds class k of the sorted list of all ILSVRC wnids."""
    root = Path(v2_dir)
    if not root.is_dir():
        raise RobinterpError(f"imagenetv2_dir {root}: not a folder; expected {V2_LAYOUT}")
    folders = sorted(p.name for p in _entries(root) if p.is_dir())
    bad = [n for n in folders if not n.isdigit()]
    if not folders or bad:
        raise RobinterpError(
            f"imagenetv2_dir {root}: folder(s) {bad[:5] or 'none'} are not class indices; expected {V2_LAYOUT}"
        )
    too_high = [n for n in folders if int(n) >= len(index_wnids)]
    if too_high:
        raise RobinterpError(
            f"imagenetv2_dir {root}: class index {too_high[0]} but only {len(index_wnids)} wnids "
            "are known; the indices refer to all 1000 ILSVRC classes: give synset_mapping "
            "(LOC_synset_mapping.txt) or a train_dir with every class"
        )
    return {index_wnids[int(n)]: _images(root / n) for n in folders}


def read_synset_mapping(path: str | Path) -> dict[str, str]:
    """LOC_synset_mapping.txt: 'n01440764 tench, Tinca tinca' per line -> {wnid: name}."""
    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"synset_mapping {path}: file not found; expected LOC_synset_mapping.txt")
    names = {}
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        wnid, _, name = line.strip().partition(" ")
        if not WNID.match(wnid):
            raise RobinterpError(f"synset_mapping {path}, line {i}: expected '<wnid> <name>', got {line!r}")
        names[wnid] = name.strip()
    return names


def choose_classes(cfg: BuildConfig, available: list[str]) -> list[str]:
    """Sorted wnids: the class list file, or `classes` drawn with the seed."""
    if cfg.class_list:
        path = Path(cfg.class_list)
        if not path.is_file():
            raise RobinterpError(f"class_list {path}: file not found; expected one wnid per line")
        wanted = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        unknown = [w for w in wanted if w not in available]
        if unknown:
            raise RobinterpError(f"class_list {path}: {unknown[:5]} not found as folders of train_dir")
        repeated = sorted({w for w in wanted if wanted.count(w) > 1})
        if repeated:
            raise RobinterpError(f"class_list {path}: {repeated[:5]} listed more than once; list each class once")
        return sorted(wanted)
    if cfg.classes > len(available):
        raise RobinterpError(f"classes: {cfg.classes} requested but train_dir has only {len(available)} class folders")
    rng = np.random.default_rng(cfg.seed)
    return sorted(str(w) for w in rng.choice(sorted(available), cfg.classes, replace=False))


# --- decoding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Fill `slots` (split, first row, count) in order from `candidates`, skipping bad files."""

    part: str
    wnid: str
    candidates: tuple[str, ...]
    slots: tuple[tuple[str, int, int], ...]


def run_job(job: Job, staging: dict[str, str], size: int) -> dict:
    arrays = {split: np.load(staging[split], mmap_mode="r+") for split, _, _ in job.slots}
    used, skipped = [], []
    cands = iter(job.candidates)
    for split, start, count in job.slots:
        row = start
        while row < start + count:
            path = next(cands, None)
            if path is None:
                return {"job": job, "used": used, "skipped": skipped, "short": (split, start + count - row)}
            try:
                arrays[split][row] = decode_image(path, size)
            except ImageError as e:
                skipped.append({"split": split, "class": job.wnid, "path": path, "error": str(e)})
                continue
            used.append((split, row, path))
            row += 1
    for a in arrays.values():
        a.flush()
    return {"job": job, "used": used, "skipped": skipped, "short": None}


def _run_job_args(args):
    return run_job(*args)


# --- the build -----------------------------------------------------------------------------


def _draw(files: list[Path], cfg: BuildConfig, part: str, wnid: str) -> tuple[str, ...]:
    """The class's candidates in a seeded random order (same seed + files -> same order)."""
    rng = np.random.default_rng([cfg.seed, PARTS.index(part), zlib.crc32(wnid.encode())])
    return tuple(str(files[i]) for i in rng.permutation(len(files)))


SOURCE_KEYS = {"train": "train_dir", "ilsvrc_val": "val_dir", "imagenetv2": "imagenetv2_dir"}


def check_sources_disjoint(jobs: list[Job], cfg: BuildConfig) -> None:
    """Refuse sources that share image files: the same folder (val_dir = train_dir), a symlink to
    a folder or file of another source, a hard link. Identity = (device, inode), one stat a file."""
    owner = {}
    for job in jobs:
        for path in job.candidates:
            st = os.stat(path)
            first = owner.setdefault((st.st_dev, st.st_ino), (job.part, path))
            if first[0] != job.part:
                a, b = SOURCE_KEYS[first[0]], SOURCE_KEYS[job.part]
                raise RobinterpError(
                    f"{a} {getattr(cfg, a)} and {b} {getattr(cfg, b)} hold the same image files ({first[1]} is "
                    f"also {path}): test and validation images must not be training images; point {b} at "
                    f"{'ImageNetV2 TopImages' if b == 'imagenetv2_dir' else 'the ILSVRC validation images'}"
                )


def check_splits_disjoint(files: dict[str, list[str]], validation: str) -> None:
    """No source file fills two rows, within a split or across splits. Under `validation:
    ilsvrc_val` val is the test split's ILSVRC part (the paper's protocol), so it is not checked apart."""
    seen = {}
    for split in ("train", "val", "test") if validation == "train_holdout" else ("train", "test"):
        for path in files[split]:
            key = os.path.normpath(path)
            if key in seen:
                raise RobinterpError(
                    f"build-small-imagenet: {path} would fill a row of {seen[key]} and of {split}; "
                    "a bug of the builder: please report it with the source folders' layout"
                )
            seen[key] = split


def plan(cfg: BuildConfig) -> tuple[list[dict], list[Job], dict[str, int]]:
    """Check the layouts, choose the classes, and list the jobs and split sizes (`cfg` is validated:
    BuildConfig.of, or the verb's settings)."""
    train = scan_train(cfg.train_dir)
    val = scan_val(cfg.val_dir, cfg.val_labels)
    names = read_synset_mapping(cfg.synset_mapping) if cfg.synset_mapping else {}
    chosen = choose_classes(cfg, list(train))
    v2 = {}
    if cfg.imagenetv2_dir:
        v2 = scan_imagenetv2(cfg.imagenetv2_dir, list(names) if names else sorted(train))
    holdout = cfg.validation == "train_holdout"
    n_tr, n_va = cfg.train_per_class, cfg.val_per_class if holdout else 0
    n_te, n_v2 = cfg.test_per_class, cfg.imagenetv2_per_class if v2 else 0
    c = len(chosen)
    sizes = {"train": c * n_tr, "val": c * (n_va if holdout else n_te), "test": c * (n_te + n_v2)}
    jobs = []
    for k, w in enumerate(chosen):
        for part, files, need, where, slots in (
            (
                "train",
                train[w],
                n_tr + n_va,
                cfg.train_dir,
                [("train", k * n_tr, n_tr)] + ([("val", k * n_va, n_va)] if holdout else []),
            ),
            ("ilsvrc_val", val.get(w, []), n_te, cfg.val_dir, [("test", k * n_te, n_te)]),
            ("imagenetv2", v2.get(w, []), n_v2, cfg.imagenetv2_dir, [("test", c * n_te + k * n_v2, n_v2)]),
        ):
            if need == 0:
                continue
            if len(files) < need:
                raise RobinterpError(
                    f"class {w} ({names.get(w, 'no name')}): {len(files)} image(s) in {where} "
                    f"({part}), needs {need}; lower the per-class counts or choose other "
                    "classes (class_list / seed)"
                )
            jobs.append(Job(part, w, _draw(files, cfg, part, w), tuple(slots)))
    check_sources_disjoint(jobs, cfg)
    classes = [{"index": k, "wnid": w, "name": names.get(w, w)} for k, w in enumerate(chosen)]
    return classes, jobs, sizes


def build(cfg: BuildConfig, out_dir: str | Path, workers: int = 1, log=print) -> dict:
    """Write out_dir/{train,val,test}; return the train manifest. Same inputs + seed -> same bytes.

    `workers`: decoding processes, 0 = every usable core. On any failure (an error, Ctrl-C, and
    SIGTERM under the CLI) the staged arrays in out_dir/.staging/ are removed."""
    staging_dir = Path(out_dir) / ".staging"
    try:
        return _build(cfg, Path(out_dir), resolve_workers(workers), log, staging_dir)
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise


def _build(cfg: BuildConfig, out_dir: Path, workers: int, log, staging_dir: Path) -> dict:
    classes, jobs, sizes = plan(cfg)
    staging = _staging(cfg, sizes, staging_dir)
    total = sum(sum(n for _, _, n in j.slots) for j in jobs)
    log(
        f"build-small-imagenet: {len(classes)} classes, {total} images to decode with {workers} worker(s); "
        f"splits {sizes}"
    )
    files, skipped = _decode(jobs, staging, cfg.image_size, sizes, total, workers)
    arrays = {split: np.load(path, mmap_mode="r") for split, path in staging.items()}
    n_ilsvrc = len(classes) * cfg.test_per_class
    if cfg.validation == "ilsvrc_val":
        arrays["val"] = arrays["test"][:n_ilsvrc]
        files["val"] = files["test"][:n_ilsvrc]
    check_splits_disjoint(files, cfg.validation)
    for split in skipped:
        skipped[split].sort(key=lambda d: (d["class"], d["path"]))
    manifest = _write_splits(cfg, out_dir, classes, sizes, n_ilsvrc, arrays, staging, files, skipped, log)
    del arrays
    shutil.rmtree(staging_dir)
    return manifest


def _staging(cfg: BuildConfig, sizes: dict, staging_dir: Path) -> dict[str, str]:
    """{split: a memory-mapped uint8 array file of its size} in a fresh staging folder."""
    s = cfg.image_size
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    staging = {}
    for split, n in sizes.items():
        if split == "val" and cfg.validation == "ilsvrc_val":
            continue  # copied from the test split's ILSVRC part
        staging[split] = str(staging_dir / f"{split}.npy")
        np.lib.format.open_memmap(staging[split], mode="w+", dtype=np.uint8, shape=(n, s, s, 3)).flush()
    return staging


def _decode(jobs: list, staging: dict, size: int, sizes: dict, total: int, workers: int) -> tuple[dict, dict]:
    """Run every job (in `workers` processes): ({split: the file of each row}, {split: skipped images})."""
    files = {split: [""] * n for split, n in sizes.items()}
    skipped = {split: [] for split in sizes}
    bar = progress(None, "build-small-imagenet", total=total, unit="images")
    args = [(j, staging, size) for j in jobs]
    if workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_run_job_args, args)
    else:
        pool, results = None, map(_run_job_args, args)
    try:
        for res in results:
            job = res["job"]
            if res["short"]:
                split, missing = res["short"]
                bad = len(res["skipped"])
                raise RobinterpError(
                    f"class {job.wnid} ({job.part}): {bad} of its {len(job.candidates)} images are "
                    f"unreadable, {missing} too few usable images for the {split} split; "
                    f"first error: {res['skipped'][0]['path']}: {res['skipped'][0]['error']}"
                )
            for split, row, path in res["used"]:
                files[split][row] = path
            for item in res["skipped"]:
                skipped[item["split"]].append(item)
            bar.update(len(res["used"]))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return files, skipped


def _write_splits(
    cfg: BuildConfig,
    out_dir: Path,
    classes: list[dict],
    sizes: dict,
    n_ilsvrc: int,
    arrays: dict,
    staging: dict,
    files: dict,
    skipped: dict,
    log,
) -> dict:
    """Write train, val and test in the packed format (train first, its staged array freed after);
    return the train manifest."""
    labels = {
        "train": np.repeat(np.arange(len(classes)), cfg.train_per_class),
        "val": np.repeat(np.arange(len(classes)), sizes["val"] // len(classes)),
        "test": np.concatenate(
            [
                np.repeat(np.arange(len(classes)), cfg.test_per_class),
                np.repeat(np.arange(len(classes)), (sizes["test"] - n_ilsvrc) // len(classes)),
            ]
        ),
    }
    mean, std = channel_stats(arrays["train"])
    source = {"kind": "small_imagenet150", **asdict(cfg)}
    parts = {
        "train": [["ilsvrc_train", 0, sizes["train"]]],
        "val": [["ilsvrc_train" if cfg.validation == "train_holdout" else "ilsvrc_val", 0, sizes["val"]]],
        "test": [["ilsvrc_val", 0, n_ilsvrc], ["imagenetv2", n_ilsvrc, sizes["test"]]],
    }
    manifests = {}
    for split in ("train", "val", "test"):
        manifests[split] = write_split(
            out_dir / split,
            arrays[split],
            labels[split],
            [c["wnid"] for c in classes],
            {**source, "split": split},
            extra={
                "mean": mean,
                "std": std,
                "seed": cfg.seed,
                "classes": classes,
                "parts": [p for p in parts[split] if p[2] > p[1]],  # [source, first row, end row)
                "files": files[split],
                "skipped": skipped[split],
            },
        )
        log(
            f"build-small-imagenet: wrote {out_dir / split} ({sizes[split]} images, "
            f"{len(skipped[split])} unreadable skipped)"
        )
        if split == "train":  # free its disk now: peak = staged splits + the written train split
            del arrays["train"]
            Path(staging["train"]).unlink()
    return manifests["train"]
