"""Shared start of every script: library import path and logging into the rule's log file.

Under `--sdm conda` the job's environment cannot install this checkout in editable mode
(Snakemake builds environments from copies of the env files), so the library is put on the
path from the checkout itself when it is not installed.
"""

import logging
import sys
from pathlib import Path

try:
    import memristor_mat  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def log_to(path: str) -> None:
    """Send the library's log records and warnings to the rule's log file."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    sys.excepthook = _log_then_raise


def _log_then_raise(kind, value, traceback) -> None:
    """Keep a failing job's traceback in its log file too (Snakemake keeps logs of failed jobs)."""
    logging.getLogger("memristor_mat").error("job failed", exc_info=(kind, value, traceback))
    sys.__excepthook__(kind, value, traceback)
