"""The config layer: suites and budget files read with a line map, validated by pydantic models
built from the registries, expanded into cells that know where they were written.

Public API (what the other layers call): :func:`load_suite`, :func:`suite_from_dict`,
:func:`expand`, :func:`filter_cells`, :func:`describe_cells`, :func:`suite_json_schema`;
:func:`read_yaml` / :func:`parse_yaml` (a :class:`Source` with its line map), :func:`validate`
and :func:`spec_union` (component models) for other input files such as budgets;
:class:`Problem` / :class:`ConfigError` (alias ``SuiteError``); :class:`Cell`,
:class:`Component`, :func:`to_json` / :func:`from_json`, :func:`label`; :class:`Setting`,
:class:`TrainConfig`, :class:`TestConfig`. Importing this package imports no torch of its own: the
registries are imported on first validation.
"""

from __future__ import annotations

from memcomp.config.cells import Cell, Component, from_json, label, to_json
from memcomp.config.components import params_of, spec_union
from memcomp.config.expand import MAX_CELLS, MAX_LEARNER_CELLS, describe_cells, filter_cells
from memcomp.config.problems import (
    ConfigError,
    Loc,
    Problem,
    SuiteError,
    format_loc,
    short,
    sorted_unique,
    validate,
)
from memcomp.config.settings import MAX_STEPS, MAX_TASKS, Setting, Strict, TestConfig, TrainConfig
from memcomp.config.source import Source, line_of, parse_yaml, read_yaml
from memcomp.config.spec import suite_json_schema
from memcomp.config.suite import Suite, SuitePart, expand, load_suite, suite_from_dict

__all__ = [
    "MAX_CELLS",
    "MAX_LEARNER_CELLS",
    "MAX_STEPS",
    "MAX_TASKS",
    "Cell",
    "Component",
    "ConfigError",
    "Loc",
    "Problem",
    "Setting",
    "Source",
    "Strict",
    "Suite",
    "SuiteError",
    "SuitePart",
    "TestConfig",
    "TrainConfig",
    "describe_cells",
    "expand",
    "filter_cells",
    "format_loc",
    "from_json",
    "label",
    "line_of",
    "load_suite",
    "params_of",
    "parse_yaml",
    "read_yaml",
    "short",
    "sorted_unique",
    "spec_union",
    "suite_from_dict",
    "suite_json_schema",
    "to_json",
    "validate",
]
