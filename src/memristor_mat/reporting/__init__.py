"""Results as numbers and figures: summary statistics, tables, and the figures of the study.

Nothing is imported here, so that a job that only summarises never loads matplotlib:

* :mod:`~memristor_mat.reporting.summary` - statistics of the Monte-Carlo accuracy table
  (:func:`~memristor_mat.reporting.summary.summarise`, per-model rows) and the published numbers
  (package data ``published.csv``) to compare with;
* :mod:`~memristor_mat.reporting.tables` - tables as CSV and Markdown;
* :mod:`~memristor_mat.reporting.style` - the figure style: method colours, markers and labels,
  axis labels, figure files;
* :mod:`~memristor_mat.reporting.curves` - accuracy against inference noise (per task, sigma_train
  curves, tasks side by side);
* :mod:`~memristor_mat.reporting.heatmaps` - trained configurations x inference noise;
* :mod:`~memristor_mat.reporting.quantization` - the QAT figures (accuracy vs levels, vs noise_sd);
* :mod:`~memristor_mat.reporting.traces` - the heartbeat figure of the ECG task.

Every plot function takes the summary table (accuracy statistics in percent) and returns
``(figure, table)``, the table holding exactly the numbers drawn, to be written next to the
figure.
"""
