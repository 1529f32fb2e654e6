# The paper's figures under {results}/{dataset}/figures/, drawn from the arrays the analyses
# wrote, never from a model (verbs: src/robinterp/commands/figures.py). Their settings are
# `analyses.plots`, their inputs the variants': a change to either redraws figures and reruns nothing else.

TARGETS.append(
    lambda ds: (
        [f"{R}/{ds}/figures/{name}.{ext}" for name in ANALYSIS_FIGURES for ext in ("png", "pdf")]
        if analyses_cfg(ds)["enabled"]
        else []
    )
)


wildcard_constraints:
    method="ig|shap",
    layout="compare|grid",


rule plot_attributions:
    input:
        arrays=per_variant("{R}/{dataset}/{method}/{variant}/attributions.npz"),
        meta=per_variant("{R}/{dataset}/{method}/{variant}/meta.json"),
    output:
        png=report(
            f"{R}/{{dataset}}/figures/{{method}}_{{layout}}.png",
            caption="../report/attributions.rst",
            category="{dataset}",
            subcategory="{method}",
        ),
        pdf=f"{R}/{{dataset}}/figures/{{method}}_{{layout}}.pdf",
    params:
        **verb_params("plot-attributions"),
        variants=variant_list,
    log:
        f"{R}/logs/plot_attributions/{{dataset}}/{{method}}_{{layout}}.log",
    resources:
        **resources_of("plot_attributions"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-attributions --variants {params.variants} --inputs {input.arrays:q}"
        " --meta {input.meta:q} --method {wildcards.method:q} --layout {wildcards.layout:q}"
        " {params.settings} --out-png {output.png:q} --out-pdf {output.pdf:q} > {log:q} 2>&1"


rule plot_class_generation:
    input:
        images=per_variant("{R}/{dataset}/class_generation/{variant}/images.npy"),
        seeds=per_variant("{R}/{dataset}/class_generation/{variant}/seeds.npy"),
        labels=per_variant("{R}/{dataset}/class_generation/{variant}/labels.npy"),
        meta=per_variant("{R}/{dataset}/class_generation/{variant}/meta.json"),
    output:
        png=report(
            f"{R}/{{dataset}}/figures/class_generation.png",
            caption="../report/class_generation.rst",
            category="{dataset}",
            subcategory="class_generation",
        ),
        pdf=f"{R}/{{dataset}}/figures/class_generation.pdf",
    params:
        **verb_params("plot-class-generation"),
        variants=variant_list,
    log:
        f"{R}/logs/plot_class_generation/{{dataset}}.log",
    resources:
        **resources_of("plot_class_generation"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-class-generation --variants {params.variants} --images {input.images:q}"
        " --seeds {input.seeds:q} --labels {input.labels:q} --meta {input.meta:q} {params.settings}"
        " --out-png {output.png:q} --out-pdf {output.pdf:q} > {log:q} 2>&1"


rule plot_inversion:
    input:
        targets=per_variant("{R}/{dataset}/inversion/{variant}/targets.npy"),
        sources=per_variant("{R}/{dataset}/inversion/{variant}/sources.npy"),
        inverted=per_variant("{R}/{dataset}/inversion/{variant}/inverted.npy"),
        meta=per_variant("{R}/{dataset}/inversion/{variant}/meta.json"),
    output:
        png=report(
            f"{R}/{{dataset}}/figures/inversion.png",
            caption="../report/inversion.rst",
            category="{dataset}",
            subcategory="inversion",
        ),
        pdf=f"{R}/{{dataset}}/figures/inversion.pdf",
    params:
        **verb_params("plot-inversion"),
        variants=variant_list,
    log:
        f"{R}/logs/plot_inversion/{{dataset}}.log",
    resources:
        **resources_of("plot_inversion"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-inversion --variants {params.variants} --targets {input.targets:q}"
        " --sources {input.sources:q} --inverted {input.inverted:q} --meta {input.meta:q}"
        " {params.settings} --out-png {output.png:q} --out-pdf {output.pdf:q} > {log:q} 2>&1"


rule plot_feature_vis:
    input:
        features=per_variant("{R}/{dataset}/feature_vis/{variant}/features.npz"),
        meta=per_variant("{R}/{dataset}/feature_vis/{variant}/meta.json"),
    output:
        png=report(
            f"{R}/{{dataset}}/figures/feature_vis.png",
            caption="../report/feature_vis.rst",
            category="{dataset}",
            subcategory="feature_vis",
        ),
        pdf=f"{R}/{{dataset}}/figures/feature_vis.pdf",
    params:
        **verb_params("plot-feature-vis"),
        variants=variant_list,
    log:
        f"{R}/logs/plot_feature_vis/{{dataset}}.log",
    resources:
        **resources_of("plot_feature_vis"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-feature-vis --variants {params.variants} --inputs {input.features:q}"
        " --meta {input.meta:q} {params.settings} --out-png {output.png:q} --out-pdf {output.pdf:q} > {log:q} 2>&1"
