"""Verbs of workflow/rules/evaluate.smk: evaluate, accuracy-table."""

from __future__ import annotations

from pathlib import Path

from ..verbs import table_flags, verb


@verb(
    "evaluate",
    "clean accuracy, and accuracy under the eval_attack (PGD) and AutoAttack, on one split -> JSON",
    settings=("eval_attack", "evaluation", "device"),
)
def evaluate_verb(a):
    import torch

    from .. import storage
    from ..attacks import AttackConfig
    from ..checkpoints import load_fitting
    from ..device import DeviceData, select
    from ..evaluate import accuracy

    ev = a.settings["evaluation"]
    device, where = select(a.settings["device"])
    model, meta, (split,) = load_fitting(a.checkpoint, device, a.data)
    attack = AttackConfig.from_block(a.settings["eval_attack"])
    data = DeviceData(split, device)  # the split moves to the device once, for PGD and AutoAttack
    torch.manual_seed(ev["seed"])
    res = accuracy(model, data, attack, ev["batch_size"], ev["max_images"], ev["amp"], ev["seed"])
    label = f"PGD-{attack.steps} {attack.norm} eps={attack.eps} step={attack.step_size}"
    if ev["autoattack"]:
        from ..autoattack import evaluate_autoattack, subset_indices

        indices = subset_indices(res["n"], ev["autoattack_max_images"], ev["seed"])
        res.update(evaluate_autoattack(model, data, indices, attack, ev["batch_size"], ev["seed"], ev["amp"]))
    out = {
        "variant": a.variant,
        **res,
        "attack": a.settings["eval_attack"],
        "attack_label": label,
        "split": str(a.data),
        "data_sha256": split.sha256,
        "checkpoint": str(a.checkpoint),
        "checkpoint_epoch": meta.get("epoch"),
        "provenance": storage.provenance(device=where),
    }
    storage.write_json(a.out, out)
    print(f"evaluate: {a.variant} clean {res['clean_acc']:.4f} adv {res['adv_acc']} (n={res['n']}) -> {a.out}")
    if "autoattack_acc" in res:
        aa = res["autoattack"]
        print(
            f"evaluate: AutoAttack ({aa['implementation']} {aa['implementation_version']}, {aa['version']}: "
            f"{', '.join(aa['attacks'])}) {res['autoattack_acc']:.4f} vs PGD {res['autoattack_pgd_acc']:.4f} on the "
            f"same {res['autoattack_n']} images ({res['autoattack_seconds']:.0f} s)"
        )


evaluate_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument("--data", type=Path, required=True),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb(
    "accuracy-table",
    "merge per-variant accuracy JSON into accuracy.csv/.md (paper's numbers beside)",
    settings=("reference",),
)
def accuracy_table_verb(a):
    from .. import storage
    from ..tables import accuracy_table, write_table

    df = accuracy_table(
        [storage.read_json(p, needs=("variant", "n", "clean_acc", "adv_acc")) for p in a.inputs],
        a.settings["reference"],
    )
    has_paper = df.filter(like="paper_").notna().any().any()
    has_reference = df.filter(like="reference_").notna().any().any()
    write_table(
        df,
        a.out_csv,
        a.out_md,
        a.out_notes,
        f"Accuracy on {a.dataset} (test split, %)",
        (
            "paper_*: the paper's Table 1 (CIFAR-10) / Table 4 (Small ImageNet 150), where it reports the variant.\n"
            if has_paper
            else ""
        )
        + (
            "reference_*: clean and AutoAttack accuracy as the model's leaderboard reports them, on its own test "
            "images and AutoAttack run (reference_source names it); ours beside them, measured here.\n"
            if has_reference
            else ""
        )
        + "adv_acc: the paper's PGD attack; autoattack_acc: AutoAttack (the authors' code, pyautoattack; standard "
        "version, with fewer attacks or targets below 10 classes: accuracy.json lists them) at the same norm "
        "and eps, the number to trust, on autoattack_n images (a seeded subset when fewer than n), beside the "
        "PGD accuracy on those same images from the same random starts (pgd_acc_same_images).",
    )
    print(df.to_string(index=False))


accuracy_table_verb.flags = table_flags
