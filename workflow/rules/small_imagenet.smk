# Small ImageNet 150: built from the user's own ILSVRC copy by `robinterp build-small-imagenet`
# (parallel decoding, streamed into memory-mapped arrays). Its own rule rather than a branch of
# prepare_data: its inputs are the config's ILSVRC paths (declared, so Snakemake sees them), it
# needs threads and a runtime.
# Only datasets whose source.kind is small_imagenet150 match; for them it wins over prepare_data.

SMALL_IMAGENET = [d for d, c in config["datasets"].items() if c["source"]["kind"] == "small_imagenet150"]


ruleorder: build_small_imagenet > prepare_data


rule build_small_imagenet:
    input:
        unpack(
            lambda w: {
                k: v
                for k, v in dataset_cfg(w.dataset)["source"].items()
                if k in SOURCE_PATHS["small_imagenet150"] and v
            }
        ),
    output:
        train=f"{R}/{{dataset}}/data/train/manifest.json",
        val=f"{R}/{{dataset}}/data/val/manifest.json",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    params:
        **verb_params("build-small-imagenet"),
        out_dir=lambda w: f"{R}/{w.dataset}/data",
    wildcard_constraints:
        dataset="|".join(SMALL_IMAGENET) or "(?!)",
    log:
        f"{R}/logs/build_small_imagenet/{{dataset}}.log",
    threads: config["threads"]["data"]
    resources:
        **resources_of("build_small_imagenet"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp build-small-imagenet {params.settings} --workers {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
