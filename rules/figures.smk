# Figures and tables: notebooks/figures.ipynb executed with papermill for each task. The
# executed copy is a log, so it survives (with the traceback) when the notebook fails.


rule figures:
    input:
        notebook=NOTEBOOK,
        summary=paths.SUMMARY,
        paired=paths.PAIRED,
    output:
        pdfs=[paths.fill(paths.FIGURE, stem=stem, ext="pdf") for stem in pipeline.FIGURE_STEMS],
        pngs=[
            report(
                paths.fill(paths.FIGURE, stem=stem, ext="png"),
                # the gain figure draws paired differences, not the summary's statistics
                caption="../report/gain_figure.rst" if stem == paths.TASK_FIGURES["gain"] else "../report/task_figure.rst",
                category="{task}",
                subcategory="figures",
                labels={"figure": stem},
            )
            for stem in pipeline.FIGURE_STEMS
        ],
        csvs=[
            report(
                paths.fill(paths.TABLE, stem=stem, ext="csv"),
                caption="../report/task_table.rst",
                category="{task}",
                subcategory="tables",
                labels={"table": stem},
            )
            for stem in pipeline.TABLE_STEMS
        ],
        markdown=[paths.fill(paths.TABLE, stem=stem, ext="md") for stem in pipeline.TABLE_STEMS],
    params:
        runner=PAPERMILL,
        caption=lambda wildcards: pipeline.caption_values(config, wildcards.task),
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
        figures_dir=lambda wildcards: paths.FIGURES_DIR.format(task=wildcards.task),
        tables_dir=lambda wildcards: paths.TABLES_DIR.format(task=wildcards.task),
        # the notebook's figure and table names, as one YAML (JSON) mapping for papermill -y
        stems=json.dumps({"stems": {**paths.TASK_FIGURES, "published": paths.PUBLISHED_TABLE}}),
    log:
        notebook=paths.executed_notebook("{task}_figures"),
        stderr=paths.log("figures", "{task}"),
    benchmark:
        paths.benchmark("figures", "{task}")
    threads: 1
    retries: NOTEBOOK_RETRIES
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p paired_path {input.paired:q} -p task {wildcards.task}"
        " -p figures_dir {params.figures_dir:q} -p tables_dir {params.tables_dir:q}"
        " -y {params.stems:q}"
        " -p headline_method {params.figures[headline_method]}"
        " -p baseline_method {params.figures[baseline_method]}"
        " -p headline_sigma_train {params.figures[headline_sigma_train]}"
        " -p center {params.figures[center]} -p show_published {params.figures[show_published]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


# A figure that a method adds to its task (the registry's `figures`, e.g. QAT's accuracy
# against the number of levels): only for tasks that train that method.
rule method_figure:
    input:
        notebook=METHOD_FIGURE_NOTEBOOK,
        summary=paths.SUMMARY,
    output:
        pdf=paths.fill(paths.FIGURE, stem="{method_figure}", ext="pdf"),
        png=report(
            paths.fill(paths.FIGURE, stem="{method_figure}", ext="png"),
            caption="../report/task_figure.rst",
            category="{task}",
            subcategory="figures",
            labels={"figure": "{method_figure}"},
        ),
        csv=paths.fill(paths.TABLE, stem="{method_figure}", ext="csv"),
        markdown=paths.fill(paths.TABLE, stem="{method_figure}", ext="md"),
    wildcard_constraints:
        method_figure="|".join(stem for m in methods.METHODS.values() for stem in m.figures),
    params:
        runner=PAPERMILL,
        caption=lambda wildcards: pipeline.caption_values(config, wildcards.task),
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
        figures_dir=lambda wildcards: paths.FIGURES_DIR.format(task=wildcards.task),
        tables_dir=lambda wildcards: paths.TABLES_DIR.format(task=wildcards.task),
    log:
        notebook=paths.executed_notebook("{task}_{method_figure}"),
        stderr=paths.log("figures", "{task}_{method_figure}"),
    benchmark:
        paths.benchmark("figures", "{task}_{method_figure}")
    threads: 1
    retries: NOTEBOOK_RETRIES
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p task {wildcards.task} -p figure {wildcards.method_figure}"
        " -p figures_dir {params.figures_dir:q} -p tables_dir {params.tables_dir:q}"
        " -p center {params.figures[center]} -p show_published {params.figures[show_published]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


# The device cross-evaluation's figures (notebooks/devices.ipynb), for tasks that list devices.


rule device_figure:
    input:
        notebook=DEVICES_NOTEBOOK,
        summary=paths.DEVICE_SUMMARY,
        paired=paths.DEVICE_PAIRED,
    output:
        pdf=paths.fill(paths.FIGURE, stem="{device_figure}", ext="pdf"),
        png=report(
            paths.fill(paths.FIGURE, stem="{device_figure}", ext="png"),
            caption="../report/device_figure.rst",
            category="{task}",
            subcategory="devices",
            labels={"figure": "{device_figure}"},
        ),
        csv=paths.fill(paths.TABLE, stem="{device_figure}", ext="csv"),
        markdown=paths.fill(paths.TABLE, stem="{device_figure}", ext="md"),
    wildcard_constraints:
        device_figure="|".join(paths.DEVICE_FIGURES.values()),
    params:
        runner=PAPERMILL,
        caption=lambda wildcards: pipeline.caption_values(config, wildcards.task),
        label=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
        # which devices each figure shows, as one YAML (JSON) mapping for papermill -y
        devices=lambda wildcards: json.dumps({
            key: value for key, value in pipeline.device_figures(config, wildcards.task).items() if key != "stems"}),
        figures=lambda wildcards: config["tasks"][wildcards.task]["figures"],
        figures_dir=lambda wildcards: paths.FIGURES_DIR.format(task=wildcards.task),
        tables_dir=lambda wildcards: paths.TABLES_DIR.format(task=wildcards.task),
    log:
        notebook=paths.executed_notebook("{task}_{device_figure}"),
        stderr=paths.log("figures", "{task}_{device_figure}"),
    benchmark:
        paths.benchmark("figures", "{task}_{device_figure}")
    threads: 1
    retries: NOTEBOOK_RETRIES
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p summary_path {input.summary:q} -p paired_path {input.paired:q}"
        " -p task {wildcards.task} -p figure {wildcards.device_figure}"
        " -p figures_dir {params.figures_dir:q} -p tables_dir {params.tables_dir:q}"
        " -y {params.devices:q} -p center {params.figures[center]}"
        " -p baseline_method {params.figures[baseline_method]}"
        " -y 'band: [{params.figures[band][0]}, {params.figures[band][1]}]'"
        " -p data_label {params.label:q} > {log.stderr:q} 2>&1"


rule figures_all:
    input:
        [path for task in config["tasks"] for path in pipeline.figure_files(task)],
        [path for task in config["tasks"] for path in pipeline.method_figure_files(config, task)],
        [path for task in config["tasks"] for path in pipeline.device_figure_files(config, task)],


rule compare_tasks:
    input:
        notebook=COMPARISON_NOTEBOOK,
        summaries=lambda wildcards: [
            pipeline.task_results(task, "summary.parquet")
            for task in config["comparisons"][wildcards.comparison]["tasks"]
        ],
    output:
        pdf=paths.fill(paths.COMPARISON_FIGURE, ext="pdf"),
        png=report(
            paths.fill(paths.COMPARISON_FIGURE, ext="png"),
            caption="../report/comparison.rst",
            category="comparisons",
            labels={"figure": "{comparison}"},
        ),
        csv=paths.fill(paths.COMPARISON_TABLE, ext="csv"),
        markdown=paths.fill(paths.COMPARISON_TABLE, ext="md"),
    params:
        runner=PAPERMILL,
        papermill=lambda wildcards, input: comparison_parameters(wildcards.comparison, input.summaries),
    log:
        notebook=paths.executed_notebook("comparison_{comparison}"),
        stderr=paths.log("compare_tasks", "{comparison}"),
    benchmark:
        paths.benchmark("compare_tasks", "{comparison}")
    threads: 1
    retries: NOTEBOOK_RETRIES
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
        models=lambda wildcards: pipeline.model_inputs(config, pipeline.trace_runs(config, wildcards.task)),
        data=paths.PREPARED,
    output:
        paths.TRACES,
    params:
        checkpoints=lambda wildcards: [run.checkpoint for run in pipeline.trace_runs(config, wildcards.task)],
        dataset=lambda wildcards: config["tasks"][wildcards.task]["dataset"],
        raw_dir=paths.RAW_DIR,
    log:
        paths.log("record_traces", "{task}"),
    benchmark:
        paths.benchmark("record_traces", "{task}")
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
        traces=paths.TRACES,
    output:
        pdf=paths.fill(paths.FIGURE, stem=paths.HEARTBEAT_FIGURE, ext="pdf"),
        png=report(
            paths.fill(paths.FIGURE, stem=paths.HEARTBEAT_FIGURE, ext="png"),
            caption="../report/heartbeat.rst",
            category="{task}",
            subcategory="figures",
            labels={"figure": paths.HEARTBEAT_FIGURE},
        ),
    params:
        runner=PAPERMILL,
        method=lambda wildcards: pipeline.trace_runs(config, wildcards.task)[-1].method,
        title=lambda wildcards: config["tasks"][wildcards.task].get("label", wildcards.task),
        figure_stem=lambda wildcards: paths.FIGURE.format(task=wildcards.task, stem=paths.HEARTBEAT_FIGURE, ext="")[:-1],
    log:
        notebook=paths.executed_notebook("{task}_heartbeat"),
        stderr=paths.log("heartbeat_figure", "{task}"),
    benchmark:
        paths.benchmark("heartbeat_figure", "{task}")
    threads: 1
    retries: NOTEBOOK_RETRIES
    resources:
        mem_mb=2000,
        runtime="10m",
    conda:
        ENV
    shell:
        "{params.runner} {input.notebook:q} {log.notebook:q} -k python3 --no-progress-bar"
        " -p traces_path {input.traces:q} -p method {params.method} -p title {params.title:q}"
        " -p figure_stem {params.figure_stem:q} > {log.stderr:q} 2>&1"
