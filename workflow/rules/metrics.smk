# Measured interpretability (docs/interpretability.md): FID of class generations and the real baseline,
# inversion distance in Inception space, attribution metrics, the robustness-interpretability
# curve over the variants, and results/summary.md. Reads the analyses' outputs by path.


# Both FID rules run this command (the real baseline on the CPU, each variant's class generation
# through the GPU launcher).
FID_SHELL = (
    "python -m robinterp fid --real {input.real:q} --fake {input.fake:q} {params.settings} {params.match_n}"
    " --variant {params.variant} --out {output:q} > {log:q} 2>&1"
)


# --- Inception weights and features ----------------------------------------------------------------

rule install_fid_weights:
    output:
        FID_WEIGHTS,
    log:
        f"{R}/logs/install_fid_weights.log",
    localrule: True
    resources:
        **resources_of("install_fid_weights"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp install-fid-weights --dest {output:q} > {log:q} 2>&1"


rule inception_features:
    input:
        split=f"{R}/{{dataset}}/data/{{split}}/manifest.json",
        weights=FID_WEIGHTS,
    output:
        f"{R}/{{dataset}}/fid/features/{{split}}.npz",
    params:
        **verb_params("inception-features"),
    wildcard_constraints:
        split="train|val|test",
    log:
        f"{R}/logs/inception_features/{{dataset}}/{{split}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("inception_features"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} -- python -m robinterp inception-features --images {input.split:q}"
        " {params.settings} --out {output:q} > {log:q} 2>&1"


# --- FID --------------------------------------------------------------------------------------------

rule fid_real_baseline:
    input:
        real=f"{R}/{{dataset}}/fid/features/test.npz",
        fake=f"{R}/{{dataset}}/fid/features/train.npz",
        generated=lambda w: f"{R}/{w.dataset}/class_generation/{variants(w.dataset)[0]}/images.npy",
    output:
        f"{R}/{{dataset}}/fid/baseline/test_vs_train.json",
    params:
        **verb_params("fid"),
        match_n=lambda w, input: f"--match-n {shlex.quote(input.generated)}",
        variant="real",
    log:
        f"{R}/logs/fid/{{dataset}}/baseline.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("fid_real_baseline"),
    conda:
        CONDA_ENV
    shell:
        f"OMP_NUM_THREADS={{threads}} {FID_SHELL}"


rule fid_class_generation:
    input:
        real=f"{R}/{{dataset}}/fid/features/test.npz",
        fake=f"{R}/{{dataset}}/class_generation/{{variant}}/images.npy",
        weights=FID_WEIGHTS,
    output:
        f"{R}/{{dataset}}/fid/variants/{{variant}}.json",
    params:
        **verb_params("fid"),
        match_n="",
        variant=lambda w: w.variant,
    log:
        f"{R}/logs/fid/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("fid_class_generation"),
    conda:
        CONDA_ENV
    shell:
        f"OMP_NUM_THREADS={{threads}} python -m robinterp.gpus {{resources.gpu}} -- {FID_SHELL}"


rule fid_table:
    input:
        baseline=f"{R}/{{dataset}}/fid/baseline/test_vs_train.json",
        variants=lambda w: expand(f"{R}/{w.dataset}/fid/variants/{{variant}}.json", variant=variants(w.dataset)),
    output:
        csv=report(
            f"{R}/{{dataset}}/tables/fid.csv",
            caption="../report/fid.rst",
            category="{dataset}",
            subcategory="FID",
        ),
        md=f"{R}/{{dataset}}/tables/fid.md",
    params:
        **verb_params("fid-table"),
    log:
        f"{R}/logs/fid_table/{{dataset}}.log",
    resources:
        **resources_of("fid_table"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp fid-table --inputs {input.baseline:q} {input.variants:q} {params.settings}"
        " --dataset {wildcards.dataset:q} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


# --- inversion distance -------------------------------------------------------------------------------

rule inversion_distance:
    input:
        targets=f"{R}/{{dataset}}/inversion/{{variant}}/targets.npy",
        inverted=f"{R}/{{dataset}}/inversion/{{variant}}/inverted.npy",
        sources=f"{R}/{{dataset}}/inversion/{{variant}}/sources.npy",
        meta=f"{R}/{{dataset}}/inversion/{{variant}}/meta.json",
        weights=FID_WEIGHTS,
    output:
        f"{R}/{{dataset}}/inversion_distance/{{variant}}.json",
    params:
        **verb_params("inversion-distance"),
    log:
        f"{R}/logs/inversion_distance/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("inversion_distance"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} -- python -m robinterp inversion-distance --targets {input.targets:q}"
        " --inverted {input.inverted:q} --sources {input.sources:q} --meta {input.meta:q} {params.settings}"
        " --variant {wildcards.variant:q} --out {output:q} > {log:q} 2>&1"


rule inversion_table:
    input:
        lambda w: expand(f"{R}/{w.dataset}/inversion_distance/{{variant}}.json", variant=variants(w.dataset)),
    output:
        csv=report(
            f"{R}/{{dataset}}/tables/inversion_distance.csv",
            caption="../report/inversion_distance.rst",
            category="{dataset}",
            subcategory="inversion distance",
        ),
        md=f"{R}/{{dataset}}/tables/inversion_distance.md",
    params:
        **verb_params("inversion-table"),
    log:
        f"{R}/logs/inversion_table/{{dataset}}.log",
    resources:
        **resources_of("inversion_table"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp inversion-table --inputs {input:q} {params.settings}"
        " --dataset {wildcards.dataset:q} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


# --- attribution metrics -------------------------------------------------------------------------------

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
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} -- python -m robinterp interpretability-metrics --checkpoint {input.model:q}"
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
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} -- python -m robinterp parameter-randomisation --checkpoint {input.model:q}"
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
    log:
        f"{R}/logs/interpretability_table/{{dataset}}.log",
    resources:
        **resources_of("interpretability_table"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp interpretability-table --inputs {input:q} --dataset {wildcards.dataset:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


# --- the curve and the summary ----------------------------------------------------------------------------

rule robustness_curve:
    input:
        accuracy=lambda w: expand(f"{R}/{w.dataset}/eval/{{v}}/accuracy.json", v=ladder(w.dataset)),
        fid=lambda w: (
            expand(f"{R}/{w.dataset}/fid/variants/{{v}}.json", v=ladder(w.dataset))
            if _enabled(w.dataset, "fid")
            else []
        ),
        metrics=lambda w: (
            expand(f"{R}/{w.dataset}/interpretability/{{v}}.json", v=ladder(w.dataset))
            if _enabled(w.dataset, "interpretability")
            else []
        )
        + (
            expand(f"{R}/{w.dataset}/interpretability/randomisation/{{v}}.json", v=ladder(w.dataset))
            if randomisation_on(w.dataset)
            else []
        ),
    output:
        png=report(
            f"{R}/{{dataset}}/figures/robustness_curve.png",
            caption="../report/robustness_curve.rst",
            category="{dataset}",
            subcategory="robustness vs interpretability",
        ),
        csv=f"{R}/{{dataset}}/tables/robustness_curve.csv",
        correlation_csv=report(
            f"{R}/{{dataset}}/tables/robustness_correlation.csv",
            caption="../report/robustness_correlation.rst",
            category="{dataset}",
            subcategory="robustness vs interpretability",
        ),
        correlation_md=f"{R}/{{dataset}}/tables/robustness_correlation.md",
    params:
        **verb_params("robustness-curve"),
    log:
        f"{R}/logs/robustness_curve/{{dataset}}.log",
    resources:
        **resources_of("robustness_curve"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp robustness-curve {params.settings} --accuracy {input.accuracy:q}"
        " --fid {input.fid:q} --metrics {input.metrics:q} --dataset {wildcards.dataset:q}"
        " --out-csv {output.csv:q} --out-png {output.png:q} --out-correlation-csv {output.correlation_csv:q}"
        " --out-correlation-md {output.correlation_md:q} > {log:q} 2>&1"


rule summary:
    input:
        tables=lambda w: [p for paths in summary_tables().values() for p in paths],
        notes=lambda w: [p[: -len("csv")] + "md" for paths in summary_tables().values() for p in paths],
        curves=lambda w: [p for ds in curve_tables() for p in curve_tables()[ds]],
    output:
        report(f"{R}/summary.md", caption="../report/summary.rst", category="summary"),
    params:
        tables=lambda w: " ".join(shlex.quote(f"{ds}={p}") for ds, paths in summary_tables().items() for p in paths),
        curves=lambda w: " ".join(shlex.quote(f"{ds}={paths[0]}") for ds, paths in curve_tables().items()),
        correlations=lambda w: " ".join(shlex.quote(f"{ds}={paths[1]}") for ds, paths in curve_tables().items()),
    log:
        f"{R}/logs/summary.log",
    resources:
        **resources_of("summary"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp summary --tables {params.tables} --curves {params.curves}"
        " --correlations {params.correlations} --out {output:q} > {log:q} 2>&1"
