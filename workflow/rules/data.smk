# Data: every source is written once into the packed format (uint8 NHWC .npy + labels +
# classes.json + manifest.json) under {results}/{dataset}/data/{train,val,test}/. An image_folder's
# listing digest is a param: a changed folder reruns the job (Snakemake reruns on changed params).


rule prepare_data:
    output:
        train=f"{R}/{{dataset}}/data/train/manifest.json",
        val=f"{R}/{{dataset}}/data/val/manifest.json",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    params:
        source=lambda w: json_arg(dataset_cfg(w.dataset)["source"]),
        out_dir=lambda w: f"{R}/{w.dataset}/data",
        listing=source_listing,
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    resources:
        **resources_of("prepare_data"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp prepare-data --source-json {params.source} --out-dir {params.out_dir:q} > {log:q} 2>&1"
