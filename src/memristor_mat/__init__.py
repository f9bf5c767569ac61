"""Memristor-Aware Training: noise injection, training and Monte-Carlo evaluation.

The library holds all logic; the Snakemake workflow and the command line only wire it.
"""

__version__ = "0.1.0"
