# Accuracy on the test split, clean and under the dataset's eval_attack (paper Tables 1, 4),
# and AutoAttack at the same norm and eps (evaluation.autoattack).

TARGETS.append(lambda ds: [f"{R}/{ds}/tables/accuracy.csv", f"{R}/{ds}/tables/accuracy.md"])


rule evaluate:
    input:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        test=f"{R}/{{dataset}}/data/test/manifest.json",
    output:
        f"{R}/{{dataset}}/eval/{{variant}}/accuracy.json",
    params:
        **verb_params("evaluate"),
    log:
        f"{R}/logs/evaluate/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["analysis"]
    resources:
        **resources_of("evaluate"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " python -m robinterp evaluate --checkpoint {input.model:q} --data {input.test:q}"
        " {params.settings} --variant {wildcards.variant:q} --out {output:q} > {log:q} 2>&1"


rule accuracy_table:
    input:
        lambda w: expand(f"{R}/{w.dataset}/eval/{{variant}}/accuracy.json", variant=variants(w.dataset)),
    output:
        csv=report(
            f"{R}/{{dataset}}/tables/accuracy.csv",
            caption="../report/accuracy.rst",
            category="{dataset}",
            subcategory="accuracy",
        ),
        md=f"{R}/{{dataset}}/tables/accuracy.md",
        notes=f"{R}/{{dataset}}/tables/accuracy.notes.json",
    params:
        **verb_params("accuracy-table"),
    log:
        f"{R}/logs/accuracy_table/{{dataset}}.log",
    resources:
        **resources_of("accuracy_table"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp accuracy-table --inputs {input:q} {params.settings}"
        " --dataset {wildcards.dataset:q} --out-csv {output.csv:q} --out-md {output.md:q}"
        " --out-notes {output.notes:q} > {log:q} 2>&1"
