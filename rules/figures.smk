# Figures and tables: notebooks/figures.ipynb executed with papermill for each task. The
# executed copy is a log, so it survives (with the traceback) when the notebook fails.


rule figures:
    input:
        notebook=NOTEBOOK,
        summary="results/{task}/summary.parquet",
    output:
        figures=expand(
            "figures/{{task}}/{stem}.{ext}",
            stem=pipeline.FIGURE_STEMS,
            ext=["pdf", "png"],
        ),
        tables=expand(
            "results/{{task}}/tables/{stem}.{ext}",
            stem=pipeline.TABLE_STEMS,
            ext=["csv", "md"],
        ),
    params:
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
    log:
        notebook="results/notebooks/{task}_figures.ipynb",
        stderr="results/logs/figures/{task}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "papermill {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p task {wildcards.task}"
        " -p figures_dir figures/{wildcards.task} -p tables_dir results/{wildcards.task}/tables"
        " -p headline_method {params.figures[headline_method]}"
        " -p headline_sigma_train {params.figures[headline_sigma_train]}"
        " -p center {params.figures[center]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


rule figures_all:
    input:
        [path for task in config["tasks"] for path in pipeline.figure_files(task)],
