# Training: one job per dataset x variant. Resumable state lives in an undeclared folder
# ({results}/{dataset}/.train_state/{variant}/), so a failed or killed job resumes on rerun.
# With `resources: gpu=N`, N > 1 (profile set-resources or `--set-resources train:gpu=N`), the
# job trains data-parallel on N GPUs of one node under torchrun (docs/scale.md).


rule train:
    input:
        train=f"{R}/{{dataset}}/data/train/manifest.json",
        val=lambda w: f"{R}/{w.dataset}/data/{selection_split(dataset_cfg(w.dataset), w.variant)}/manifest.json",
    output:
        model=f"{R}/{{dataset}}/models/{{variant}}/model.pt",
        log_csv=f"{R}/{{dataset}}/models/{{variant}}/train_log.csv",
    params:
        **verb_params("train"),
        state_dir=lambda w: f"{R}/{w.dataset}/.train_state/{w.variant}",
        launcher=lambda w, resources: python_launcher(resources.gpu),
    log:
        f"{R}/logs/train/{{dataset}}/{{variant}}.log",
    threads: config["threads"]["train"]
    resources:
        **resources_of("train"),
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} python -m robinterp.gpus {resources.gpu} --"
        " {params.launcher} -m robinterp train --train {input.train:q} --val {input.val:q}"
        " {params.settings} --variant {wildcards.variant:q}"
        " --out {output.model:q} --log-csv {output.log_csv:q} --state-dir {params.state_dir:q} > {log:q} 2>&1"
