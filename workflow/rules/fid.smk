# FID of class generations and the real baseline, and the inversion distance, both in the
# Inception network's feature space (docs/interpretability.md), with their tables. Reads the
# analyses' outputs by path.


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
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp inception-features --images {input.split:q}"
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
        notes=f"{R}/{{dataset}}/tables/fid.notes.json",
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
        " --dataset {wildcards.dataset:q} --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-notes {output.notes:q} > {log:q} 2>&1"


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
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp inversion-distance --targets {input.targets:q}"
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
        notes=f"{R}/{{dataset}}/tables/inversion_distance.notes.json",
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
        " --dataset {wildcards.dataset:q} --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-notes {output.notes:q} > {log:q} 2>&1"
