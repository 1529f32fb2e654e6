# Data: every source is written once into the packed format (uint8 NHWC .npy + labels +
# classes.json + manifest.json) under {results}/{dataset}/data/{train,val,test}/. An image_folder's
# listing digest is a param: a changed folder reruns the job (Snakemake reruns on changed params).
# What needs the internet (CIFAR-10's archive) is fetched by download_data, a local rule: it runs
# where Snakemake runs, which on a cluster is the submitting node, before any job that reads it.


rule download_data:
    output:
        CIFAR10_FETCHED,
    params:
        **verb_params("download-data", dataset_of=lambda w: DOWNLOADS[w.cifar_root]),
    wildcard_constraints:
        cifar_root="|".join(re.escape(root) for root in DOWNLOADS) or "(?!)",
    log:
        f"{R}/logs/download_data/{{cifar_root}}.log",
    localrule: True
    resources:
        **resources_of("download_data"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp download-data {params.settings} > {log:q} 2>&1"


rule prepare_data:
    input:
        fetched=lambda w: downloaded_input(w.dataset),
    output:
        train=f"{R}/{{dataset}}/data/train/manifest.json",
        val=f"{R}/{{dataset}}/data/val/manifest.json",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    params:
        **verb_params("prepare-data"),
        out_dir=lambda w: f"{R}/{w.dataset}/data",
        listing=source_listing,
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    resources:
        **resources_of("prepare_data"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp prepare-data {params.settings} --out-dir {params.out_dir:q} > {log:q} 2>&1"
