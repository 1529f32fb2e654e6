# Interpretability analyses (paper 2.3): one compute job per dataset x variant x method writing
# arrays under {results}/{dataset}/<method>/{variant}/, and plot jobs that read only those arrays
# and draw the paper's figures under {results}/{dataset}/figures/. A compute rule's params are
# exactly its method's config block; a plot rule's are `analyses.plots` - so a config change
# reruns only the jobs it concerns (tests/test_analyses_workflow.py).

include: "analyses_common.smk"


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


rule ig:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        attributions=f"{R}/{{dataset}}/ig/{{variant}}/attributions.npz",
        meta=f"{R}/{{dataset}}/ig/{{variant}}/meta.json",
    params:
        **analysis_params("ig"),
    log:
        f"{R}/logs/ig/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        gpu=GPU,
        mem_mb=8000,  # peak at the paper's counts, CPU run, x1.25 (docs/scale.md)
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp ig --checkpoint {input.model} --data {input.test}"
        " --config-json {params.config} --variant {wildcards.variant} --device {params.device}"
        " --out {output.attributions} --meta {output.meta} > {log} 2>&1"


rule shap:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
        train=f"{R}/{{dataset}}/data/train/manifest.json",
    output:
        attributions=f"{R}/{{dataset}}/shap/{{variant}}/attributions.npz",
        meta=f"{R}/{{dataset}}/shap/{{variant}}/meta.json",
    params:
        **analysis_params("shap"),
    log:
        f"{R}/logs/shap/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        gpu=GPU,
        mem_mb=4000,  # peak at the paper's counts, CPU run, x1.25 (docs/scale.md)
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp shap --checkpoint {input.model} --data {input.test}"
        " --train {input.train} --config-json {params.config} --variant {wildcards.variant}"
        " --device {params.device} --out {output.attributions} --meta {output.meta} > {log} 2>&1"


rule class_generation:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        images=f"{R}/{{dataset}}/class_generation/{{variant}}/images.npy",
        seeds=f"{R}/{{dataset}}/class_generation/{{variant}}/seeds.npy",
        labels=f"{R}/{{dataset}}/class_generation/{{variant}}/labels.npy",
        meta=f"{R}/{{dataset}}/class_generation/{{variant}}/meta.json",
    params:
        **analysis_params("class_generation"),
    log:
        f"{R}/logs/class_generation/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        gpu=GPU,
        mem_mb=11000,  # peak at the paper's counts, CPU run, x1.25 (docs/scale.md)
        runtime=120,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp class-generation --checkpoint {input.model}"
        " --data {input.test} --config-json {params.config} --variant {wildcards.variant}"
        " --device {params.device} --out-images {output.images} --out-seeds {output.seeds}"
        " --out-labels {output.labels} --meta {output.meta} > {log} 2>&1"


rule inversion:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        targets=f"{R}/{{dataset}}/inversion/{{variant}}/targets.npy",
        sources=f"{R}/{{dataset}}/inversion/{{variant}}/sources.npy",
        inverted=f"{R}/{{dataset}}/inversion/{{variant}}/inverted.npy",
        meta=f"{R}/{{dataset}}/inversion/{{variant}}/meta.json",
    params:
        **analysis_params("inversion"),
    log:
        f"{R}/logs/inversion/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        gpu=GPU,
        mem_mb=5000,  # peak at the paper's counts, CPU run, x1.25 (docs/scale.md)
        runtime=240,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp inversion --checkpoint {input.model}"
        " --data {input.test} --config-json {params.config} --variant {wildcards.variant}"
        " --device {params.device} --out-targets {output.targets} --out-sources {output.sources}"
        " --out-inverted {output.inverted} --meta {output.meta} > {log} 2>&1"


rule feature_vis:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        features=f"{R}/{{dataset}}/feature_vis/{{variant}}/features.npz",
        meta=f"{R}/{{dataset}}/feature_vis/{{variant}}/meta.json",
    params:
        **analysis_params("feature_vis"),
    log:
        f"{R}/logs/feature_vis/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        gpu=GPU,
        mem_mb=4000,  # peak at the paper's counts, CPU run, x1.25 (docs/scale.md)
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp feature-vis --checkpoint {input.model}"
        " --data {input.test} --config-json {params.config} --variant {wildcards.variant}"
        " --device {params.device} --out {output.features} --meta {output.meta} > {log} 2>&1"


# --- figures: read arrays only -----------------------------------------------------------


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
        **plot_params(),
    log:
        f"{R}/logs/plot_attributions/{{dataset}}/{{method}}_{{layout}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-attributions --variants {params.variants} --inputs {input.arrays}"
        " --meta {input.meta} --method {wildcards.method} --layout {wildcards.layout}"
        " --plots-json {params.plots} --out-png {output.png} --out-pdf {output.pdf} > {log} 2>&1"


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
        **plot_params(),
    log:
        f"{R}/logs/plot_class_generation/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-class-generation --variants {params.variants} --images {input.images}"
        " --seeds {input.seeds} --labels {input.labels} --meta {input.meta} --plots-json {params.plots}"
        " --out-png {output.png} --out-pdf {output.pdf} > {log} 2>&1"


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
        **plot_params(),
    log:
        f"{R}/logs/plot_inversion/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-inversion --variants {params.variants} --targets {input.targets}"
        " --sources {input.sources} --inverted {input.inverted} --meta {input.meta}"
        " --plots-json {params.plots} --out-png {output.png} --out-pdf {output.pdf} > {log} 2>&1"


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
        **plot_params(),
    log:
        f"{R}/logs/plot_feature_vis/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp plot-feature-vis --variants {params.variants} --inputs {input.features}"
        " --meta {input.meta} --plots-json {params.plots} --out-png {output.png} --out-pdf {output.pdf} > {log} 2>&1"
