# Published models (docs/published_models.md): a variant with a `checkpoint:` block is imported
# from the user's downloaded file instead of trained. Both rules write models/{variant}/model.pt,
# so every evaluation, analysis, metric and figure fans out over imported variants unchanged.
# The import reads the dataset's test manifest for its class names (and, with class_subset, the
# wnids whose logits it keeps).

ruleorder: import_checkpoint > train


rule import_checkpoint:
    input:
        file=lambda w: checkpoint_cfg(w.dataset, w.variant)["path"],
        classes=f"{R}/{{dataset}}/data/test/manifest.json",
        index=lambda w: imagenet_index_input(w.dataset, w.variant),
    output:
        f"{R}/{{dataset}}/models/{{variant}}/model.pt",
    params:
        flags=lambda w: import_flags(w.dataset, w.variant),
        index=lambda w: " ".join(f"--imagenet-index {shlex.quote(p)}" for p in imagenet_index_input(w.dataset, w.variant)),
    wildcard_constraints:
        variant="|".join(re.escape(name) for name in IMPORTED) or "(?!)",
    log:
        f"{R}/logs/import_checkpoint/{{dataset}}/{{variant}}.log",
    resources:
        **resources_of("import_checkpoint"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp import-checkpoint {params.flags} --input {input.file:q} --classes {input.classes:q}"
        " {params.index} --out {output:q} > {log:q} 2>&1"
