# Attribution metrics of each variant, the parameter randomisation check with its figure, and the
# interpretability table (docs/interpretability.md). Reads the attribution analyses' outputs by path.


rule interpretability_metrics:
    input:
        unpack(attribution_inputs),
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        f"{R}/{{dataset}}/interpretability/{{variant}}.json",
    params:
        **verb_params("interpretability-metrics"),
        named=named_attributions,
    log:
        f"{R}/logs/interpretability_metrics/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("interpretability_metrics"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp interpretability-metrics --checkpoint {input.model:q}"
        " --test {input.test:q} --attributions {params.named} {params.settings}"
        " --variant {wildcards.variant:q} --out {output:q} > {log:q} 2>&1"


rule parameter_randomisation:
    input:
        unpack(attribution_inputs),
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        train=f"{R}/{{dataset}}/data/train/manifest.json",
    output:
        f"{R}/{{dataset}}/interpretability/randomisation/{{variant}}.json",
    params:
        **verb_params("parameter-randomisation"),
        named=named_attributions,
    log:
        f"{R}/logs/parameter_randomisation/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("parameter_randomisation"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp parameter-randomisation --checkpoint {input.model:q}"
        " --attributions {params.named} --train {input.train:q} {params.settings}"
        " --variant {wildcards.variant:q} --out {output:q} > {log:q} 2>&1"


rule randomisation_figure:
    input:
        lambda w: randomisation_results(w.dataset),
    output:
        report(
            f"{R}/{{dataset}}/figures/parameter_randomisation.png",
            caption="../report/parameter_randomisation.rst",
            category="{dataset}",
            subcategory="interpretability metrics",
        ),
    log:
        f"{R}/logs/randomisation_figure/{{dataset}}.log",
    resources:
        **resources_of("randomisation_figure"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp randomisation-plot --inputs {input:q} --dataset {wildcards.dataset:q} --out {output:q}"
        " > {log:q} 2>&1"


rule interpretability_table:
    input:
        lambda w: expand(f"{R}/{w.dataset}/interpretability/{{variant}}.json", variant=variants(w.dataset))
        + randomisation_results(w.dataset),
    output:
        csv=report(
            f"{R}/{{dataset}}/tables/interpretability.csv",
            caption="../report/interpretability.rst",
            category="{dataset}",
            subcategory="interpretability metrics",
        ),
        md=f"{R}/{{dataset}}/tables/interpretability.md",
        notes=f"{R}/{{dataset}}/tables/interpretability.notes.json",
    log:
        f"{R}/logs/interpretability_table/{{dataset}}.log",
    resources:
        **resources_of("interpretability_table"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp interpretability-table --inputs {input:q} --dataset {wildcards.dataset:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-notes {output.notes:q} > {log:q} 2>&1"
