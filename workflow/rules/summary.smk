# The robustness-interpretability curve over a dataset's variants and results/summary.md, from the
# JSON results and tables of the other stages (no model is loaded).


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
        " --out-csv {output.csv:q} --out-png {output.png:q} > {log:q} 2>&1"


rule summary:
    input:
        tables=lambda w: [p for paths in summary_tables().values() for p in paths],
        notes=lambda w: [p[: -len("csv")] + "notes.json" for paths in summary_tables().values() for p in paths],
        curves=lambda w: [
            f"{R}/{ds}/tables/robustness_curve.csv" for ds in enabled_datasets() if _enabled(ds, "curve")
        ],
    output:
        report(f"{R}/summary.md", caption="../report/summary.rst", category="summary"),
    params:
        tables=lambda w: " ".join(shlex.quote(f"{ds}={p}") for ds, paths in summary_tables().items() for p in paths),
        curves=lambda w: " ".join(
            shlex.quote(f"{ds}={R}/{ds}/tables/robustness_curve.csv")
            for ds in enabled_datasets()
            if _enabled(ds, "curve")
        ),
    log:
        f"{R}/logs/summary.log",
    resources:
        **resources_of("summary"),
    conda:
        CONDA_ENV
    shell:
        "python -m robinterp summary --tables {params.tables} --notes {input.notes:q} --curves {params.curves}"
        " --out {output:q} > {log:q} 2>&1"
