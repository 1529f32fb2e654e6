# Interpretability analyses (paper 2.3): one job per dataset x variant x method writing arrays
# under {results}/{dataset}/<method>/{variant}/ (verbs: src/robinterp/commands/analyses.py).
# A rule's rerun trigger is its method's config block less its batch size, so a config change
# reruns only the method it concerns and that method's figures (figures.smk).

wildcard_constraints:
    method="ig|shap",


rule ig:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        attributions=f"{R}/{{dataset}}/ig/{{variant}}/attributions.npz",
        meta=f"{R}/{{dataset}}/ig/{{variant}}/meta.json",
    params:
        **verb_params("ig"),
    log:
        f"{R}/logs/ig/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("ig"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp ig --checkpoint {input.model:q} --data {input.test:q}"
        " {params.settings} --variant {wildcards.variant:q}"
        " --out {output.attributions:q} --meta {output.meta:q} > {log:q} 2>&1"


rule shap:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
        train=f"{R}/{{dataset}}/data/train/manifest.json",
    output:
        attributions=f"{R}/{{dataset}}/shap/{{variant}}/attributions.npz",
        meta=f"{R}/{{dataset}}/shap/{{variant}}/meta.json",
    params:
        **verb_params("shap"),
    log:
        f"{R}/logs/shap/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("shap"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp shap --checkpoint {input.model:q} --data {input.test:q}"
        " --train {input.train:q} {params.settings} --variant {wildcards.variant:q}"
        " --out {output.attributions:q} --meta {output.meta:q} > {log:q} 2>&1"


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
        **verb_params("class-generation"),
    log:
        f"{R}/logs/class_generation/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("class_generation"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp class-generation --checkpoint {input.model:q}"
        " --data {input.test:q} {params.settings} --variant {wildcards.variant:q}"
        " --out-images {output.images:q} --out-seeds {output.seeds:q}"
        " --out-labels {output.labels:q} --meta {output.meta:q} > {log:q} 2>&1"


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
        **verb_params("inversion"),
    log:
        f"{R}/logs/inversion/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("inversion"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp inversion --checkpoint {input.model:q}"
        " --data {input.test:q} {params.settings} --variant {wildcards.variant:q}"
        " --out-targets {output.targets:q} --out-sources {output.sources:q}"
        " --out-inverted {output.inverted:q} --meta {output.meta:q} > {log:q} 2>&1"


rule feature_vis:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        features=f"{R}/{{dataset}}/feature_vis/{{variant}}/features.npz",
        meta=f"{R}/{{dataset}}/feature_vis/{{variant}}/meta.json",
    params:
        **verb_params("feature-vis"),
    log:
        f"{R}/logs/feature_vis/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("feature_vis"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp feature-vis --checkpoint {input.model:q}"
        " --data {input.test:q} {params.settings} --variant {wildcards.variant:q}"
        " --out {output.features:q} --meta {output.meta:q} > {log:q} 2>&1"
