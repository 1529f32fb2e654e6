# Published models (docs/published_models.md): a variant with a `checkpoint:` block is imported
# instead of trained, from the user's downloaded file or from a RobustBench zoo entry by name.
# Both rules that write models/{variant}/model.pt (import_checkpoint, train) write the same format,
# so every evaluation, analysis, metric and figure fans out over imported variants unchanged.
# The import reads the dataset's test manifest for its class names (and, with class_subset, the
# wnids whose logits it keeps).
# A zoo entry's file is downloaded once, by download_robustbench, a local rule: it runs where
# Snakemake runs, which on a cluster is the submitting node (it has the internet). Its unfinished
# `.part` is not an output, so a retried or rerun download resumes it.


ruleorder: import_checkpoint > train


rule download_robustbench:
    output:
        file=ZOO_FILE,
        sidecar=f"{ZOO_FILE}.json",
    wildcard_constraints:
        zoo_dataset="cifar10|cifar100|imagenet",
        threat="L2|Linf|corruptions",
        zoo_name="[A-Za-z0-9][A-Za-z0-9_.-]*",
    log:
        f"{R}/logs/download_robustbench/{{zoo_dataset}}/{{threat}}/{{zoo_name}}.log",
    localrule: True
    retries: 2
    resources:
        **resources_of("download_robustbench", runtime=120),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp download-robustbench --name {wildcards.zoo_name:q} --dataset {wildcards.zoo_dataset:q}"
        " --threat-model {wildcards.threat:q} --out {output.file:q} --sidecar {output.sidecar:q} > {log:q} 2>&1"


rule robustbench_downloads:
    """Every zoo file the config names, and nothing else: run it where the internet is, first."""
    input:
        [f for path in ZOO_FILES for f in (path, f"{path}.json")],
    localrule: True


rule import_checkpoint:
    input:
        unpack(lambda w: import_inputs(w.dataset, w.variant)),
        classes=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        f"{R}/{{dataset}}/models/{{variant}}/model.pt",
    params:
        **verb_params("import-checkpoint"),
        sidecar=lambda w, input: f"--sidecar {shlex.quote(input.sidecar)}" if "sidecar" in input.keys() else "",
        index=lambda w, input: f"--imagenet-index {shlex.quote(input.index)}" if "index" in input.keys() else "",
    wildcard_constraints:
        variant="|".join(re.escape(name) for name in IMPORTED) or "(?!)",
    log:
        f"{R}/logs/import_checkpoint/{{dataset}}/{{variant}}.log",
    resources:
        # the file's tensors are held twice (the file's and the model's): a WideResNet-70-16 is ~1 GB
        **resources_of("import_checkpoint", mem_mb=lambda w, input: max(2000, 1000 + 3 * int(input.size_mb))),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp import-checkpoint {params.settings} --input {input.file:q} {params.sidecar}"
        " --classes {input.classes:q} {params.index} --out {output:q} > {log:q} 2>&1"
