"""Every file pattern lives in memristor_mat.paths: the rules and the library use the same one."""

import re
from pathlib import Path

from memristor_mat import paths, pipeline

REPO = Path(__file__).resolve().parents[1]


def test_fill_sets_some_fields_and_keeps_the_others_as_wildcards():
    assert paths.fill(paths.FIGURE, stem="accuracy_vs_noise", ext="png") == "figures/{task}/accuracy_vs_noise.png"
    assert paths.fill(paths.MODEL, task="mnist") == "results/models/mnist/{method}/{setting}/seed~{seed}/model.pt"
    assert paths.fill(paths.PREPARED) == paths.PREPARED


def test_a_models_files_are_the_patterns_formatted_with_its_wildcards():
    run = pipeline.ModelRun("mnist", "qat", 4.0, 14)
    assert run.checkpoint == "results/models/mnist/qat/levels~4/seed~14/model.pt"
    assert run.checkpoint == paths.MODEL.format(**run.wildcards)
    assert run.evaluation == "results/evaluation/mnist/qat/levels~4/seed~14.parquet"
    assert pipeline.ModelRun("mnist", "vanilla", 0.0, 15).metrics == "results/models/mnist/vanilla/sigma~0/seed~15/metrics.csv"
    assert pipeline.figure_files("ecg")[0] == "figures/ecg/accuracy_vs_noise.pdf"
    assert pipeline.comparison_files("x") == ["figures/comparisons/x.pdf", "figures/comparisons/x.png",
                                              "results/comparisons/x.csv", "results/comparisons/x.md"]


def test_no_rule_spells_a_path_of_its_own():
    # a quoted string starting with results/ or figures/ in a rule file would be a second
    # definition of a pattern that memristor_mat.paths owns
    for rule_file in sorted((REPO / "rules").glob("*.smk")):
        literals = re.findall(r"""["'](?:results|figures)/[^"']*["']""", rule_file.read_text())
        assert not literals, f"{rule_file.name} spells paths itself: {literals}"
