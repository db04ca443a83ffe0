"""``memcomp check``: fail CI when a learner's peak memory grows past its budget.

:mod:`~memcomp.budgets.spec` parses budget files through the config layer (file, line and
field in every message), :mod:`~memcomp.budgets.measure` measures and judges,
:mod:`~memcomp.budgets.junit` writes JUnit XML, :mod:`~memcomp.budgets.update` rewrites
baselines (``--update``) and :mod:`~memcomp.budgets.run` is the command.
"""

from __future__ import annotations

from memcomp.budgets.junit import write_junit
from memcomp.budgets.measure import VERDICTS, Measure, Outcome, check_budgets, measured_source
from memcomp.budgets.run import run_check
from memcomp.budgets.spec import SOURCES, Budget, BudgetFile, load_budgets, parse_budgets
from memcomp.budgets.update import rewrite_baselines, update_file

__all__ = [
    "SOURCES",
    "VERDICTS",
    "Budget",
    "BudgetFile",
    "Measure",
    "Outcome",
    "check_budgets",
    "load_budgets",
    "measured_source",
    "parse_budgets",
    "rewrite_baselines",
    "run_check",
    "update_file",
    "write_junit",
]
