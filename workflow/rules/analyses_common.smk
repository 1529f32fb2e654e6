# Helpers of analyses.smk (no torch): config blocks as rule params, per-variant input lists.

ANALYSIS_FIGURES = ["ig_compare", "ig_grid", "shap_compare", "shap_grid", "class_generation", "inversion", "feature_vis"]


def analyses_cfg(dataset):
    return dataset_cfg(dataset)["analyses"]


def analysis_params(method):
    """`settings` (the method's block less its batch size) decides reruns; `config` is what the verb reads."""
    return {
        "settings": settings_param(lambda w: analyses_cfg(w.dataset)[method], "analyses"),
        "config": run_settings(lambda w: json_arg(analyses_cfg(w.dataset)[method])),
        "device": run_settings(lambda w: config["device"]),
    }


def per_variant(pattern):
    """Input function: `pattern` ({R}, {variant} and the rule's wildcards) for every variant."""
    return lambda w: [pattern.format(R=R, variant=v, **dict(w.items())) for v in variants(w.dataset)]


def plot_params():
    return {
        "plots": lambda w: json_arg(analyses_cfg(w.dataset)["plots"]),
        "variants": lambda w: " ".join(variants(w.dataset)),
    }
