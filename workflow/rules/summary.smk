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
        correlation_csv=report(
            f"{R}/{{dataset}}/tables/robustness_correlation.csv",
            caption="../report/robustness_correlation.rst",
            category="{dataset}",
            subcategory="robustness vs interpretability",
        ),
        correlation_md=f"{R}/{{dataset}}/tables/robustness_correlation.md",
        correlation_notes=f"{R}/{{dataset}}/tables/robustness_correlation.notes.json",
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
        " --out-correlation-md {output.correlation_md:q} --out-correlation-notes {output.correlation_notes:q}"
        " > {log:q} 2>&1"


rule summary:
    input:
        tables=lambda w: [p for paths in summary_tables().values() for p in paths],
        notes=lambda w: [p[: -len("csv")] + "notes.json" for paths in summary_tables().values() for p in paths],
        curves=lambda w: [p for paths in curve_tables().values() for p in paths],
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
        "python -m robinterp summary --tables {params.tables} --notes {input.notes:q} --curves {params.curves}"
        " --correlations {params.correlations} --out {output:q} > {log:q} 2>&1"
