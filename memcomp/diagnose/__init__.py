"""Hypergradient diagnostics: each learner's meta-gradient error against the exact hypergradient.

``python -m memcomp.diagnose --out DIR`` runs the default sweep (K, N and lambda per learner) on
one small float64 model and writes ``DIR/hypergrad-error.csv`` and ``DIR/hypergrad-error.png``.
"""

from memcomp.diagnose.sweep import Config, Problem, default_sweep, run_sweep

__all__ = ["Config", "Problem", "default_sweep", "run_sweep"]
