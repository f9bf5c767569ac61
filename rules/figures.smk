# Figures and tables: notebooks/figures.ipynb executed with papermill for each task. The
# executed copy is a log, so it survives (with the traceback) when the notebook fails.


rule figures:
    input:
        notebook=NOTEBOOK,
        summary="results/{task}/summary.parquet",
    output:
        pdfs=expand("figures/{{task}}/{stem}.pdf", stem=pipeline.FIGURE_STEMS),
        pngs=[
            report(
                f"figures/{{task}}/{stem}.png",
                caption="../report/task_figure.rst",
                category="{task}",
                subcategory="figures",
                labels={"figure": stem},
            )
            for stem in pipeline.FIGURE_STEMS
        ],
        csvs=[
            report(
                f"results/{{task}}/tables/{stem}.csv",
                caption="../report/task_table.rst",
                category="{task}",
                subcategory="tables",
                labels={"table": stem},
            )
            for stem in pipeline.TABLE_STEMS
        ],
        markdown=expand("results/{{task}}/tables/{stem}.md", stem=pipeline.TABLE_STEMS),
    params:
        runner=PAPERMILL,
        caption=lambda wildcards: pipeline.caption_values(config, wildcards.task),
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
    log:
        notebook="results/notebooks/{task}_figures.ipynb",
        stderr="results/logs/figures/{task}.log",
    benchmark:
        "results/benchmarks/figures/{task}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p task {wildcards.task}"
        " -p figures_dir figures/{wildcards.task} -p tables_dir results/{wildcards.task}/tables"
        " -p headline_method {params.figures[headline_method]}"
        " -p headline_sigma_train {params.figures[headline_sigma_train]}"
        " -p center {params.figures[center]} -p show_published {params.figures[show_published]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


# A figure that a method adds to its task (the registry's `figures`, e.g. QAT's accuracy
# against the number of levels): only for tasks that train that method.
rule method_figure:
    input:
        notebook=METHOD_FIGURE_NOTEBOOK,
        summary="results/{task}/summary.parquet",
    output:
        pdf="figures/{task}/{method_figure}.pdf",
        png=report(
            "figures/{task}/{method_figure}.png",
            caption="../report/task_figure.rst",
            category="{task}",
            subcategory="figures",
            labels={"figure": "{method_figure}"},
        ),
        csv="results/{task}/tables/{method_figure}.csv",
        markdown="results/{task}/tables/{method_figure}.md",
    wildcard_constraints:
        method_figure="|".join(stem for m in methods.METHODS.values() for stem in m.figures),
    params:
        runner=PAPERMILL,
        caption=lambda wildcards: pipeline.caption_values(config, wildcards.task),
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
    log:
        notebook="results/notebooks/{task}_{method_figure}.ipynb",
        stderr="results/logs/figures/{task}_{method_figure}.log",
    benchmark:
        "results/benchmarks/figures/{task}_{method_figure}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p task {wildcards.task} -p figure {wildcards.method_figure}"
        " -p figures_dir figures/{wildcards.task} -p tables_dir results/{wildcards.task}/tables"
        " -p center {params.figures[center]} -p show_published {params.figures[show_published]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


rule figures_all:
    input:
        [path for task in config["tasks"] for path in pipeline.figure_files(task)],
        [path for task in config["tasks"] for path in pipeline.method_figure_files(config, task)],


rule compare_tasks:
    input:
        notebook=COMPARISON_NOTEBOOK,
        summaries=lambda wildcards: [
            pipeline.task_results(task, "summary.parquet")
            for task in config["comparisons"][wildcards.comparison]["tasks"]
        ],
    output:
        pdf="figures/comparisons/{comparison}.pdf",
        png=report(
            "figures/comparisons/{comparison}.png",
            caption="../report/comparison.rst",
            category="comparisons",
            labels={"figure": "{comparison}"},
        ),
        csv="results/comparisons/{comparison}.csv",
        markdown="results/comparisons/{comparison}.md",
    params:
        runner=PAPERMILL,
        papermill=lambda wildcards, input: comparison_parameters(wildcards.comparison, input.summaries),
    log:
        notebook="results/notebooks/comparison_{comparison}.ipynb",
        stderr="results/logs/compare_tasks/{comparison}.log",
    benchmark:
        "results/benchmarks/compare_tasks/{comparison}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -y {params.papermill:q} > {log.stderr:q} 2>&1"


rule record_traces:
    input:
        models=lambda wildcards: [run.checkpoint for run in pipeline.trace_runs(config, wildcards.task)],
        data="results/prepared/{task}.npz",
    output:
        "results/{task}/traces.parquet",
    params:
        dataset=lambda wildcards: config["tasks"][wildcards.task]["dataset"],
        raw_dir="data/raw",
    log:
        "results/logs/record_traces/{task}.log",
    benchmark:
        "results/benchmarks/record_traces/{task}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    script:
        "../scripts/record_traces.py"


rule heartbeat_figure:
    input:
        notebook=TRACES_NOTEBOOK,
        traces="results/{task}/traces.parquet",
    output:
        pdf="figures/{task}/heartbeat_raster.pdf",
        png=report(
            "figures/{task}/heartbeat_raster.png",
            caption="../report/heartbeat.rst",
            category="{task}",
            subcategory="figures",
            labels={"figure": "heartbeat_raster"},
        ),
    params:
        runner=PAPERMILL,
        method=lambda wildcards: pipeline.trace_runs(config, wildcards.task)[-1].method,
        title=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
    log:
        notebook="results/notebooks/{task}_heartbeat.ipynb",
        stderr="results/logs/heartbeat_figure/{task}.log",
    benchmark:
        "results/benchmarks/heartbeat_figure/{task}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p traces_path {input.traces:q} -p method {params.method} -p title {params.title:q}"
        " -p figure_stem figures/{wildcards.task}/heartbeat_raster > {log.stderr:q} 2>&1"
