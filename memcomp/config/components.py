"""Pydantic models of component entries, built FROM the registries.

Each registry (datasets, backbones, learners) gives a tagged union discriminated on ``name``: one
member per registered entry, made of the entry's own parameter model plus ``name``. So a component
registered later (a plugin, a test fake) is validated, listed and in the JSON Schema without extra
code. Learner members also accept each parameter as a non-empty list (one cell per value) and
``train`` / ``test`` overrides. The models are rebuilt when a registry changes.

A validated entry becomes typed here, once: :func:`component_of` gives a dataset or backbone its
registered model's instance (the member model subclasses it, so every validator has run), and
:func:`learner_entry` keeps a learner entry's values and list axes beside its registered model,
which validates each expanded combination (:func:`memcomp.config.expand.learner_cells`): a
learner's own field and model validators hold for every cell, lists or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, create_model

from memcomp.config.cells import Component
from memcomp.config.problems import COMPONENT_ERROR, TAG
from memcomp.config.registries import KINDS, registry
from memcomp.config.settings import Strict, TestOverrides, TrainOverrides
from memcomp.registry import Entry, Params

ONE, MANY = TAG + "one", TAG + "list"
_cache: dict[tuple[Any, ...], Any] = {}


def _name_of(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return TAG + value["name"]
    return None


def _one_or_many(value: Any) -> str:
    return MANY if isinstance(value, list) else ONE


def _listable(info: Any) -> tuple[Any, Any]:
    """A parameter field that also takes a non-empty list of values (one cell per value)."""
    one = (
        Annotated.__class_getitem__((info.annotation, *info.metadata))
        if info.metadata
        else info.annotation
    )
    many = Annotated[list[one], Field(min_length=1)]  # type: ignore[valid-type]
    union = Annotated[
        Union[Annotated[one, Tag(ONE)], Annotated[many, Tag(MANY)]],  # noqa: UP007
        Discriminator(_one_or_many),
    ]
    copy = Field(
        default=info.default,
        default_factory=info.default_factory,
        description=(info.description or "") + " (a list gives one cell per value)",
    )
    return union, copy


def _member(kind: str, entry: Entry[Any], lists: bool) -> type[BaseModel]:
    """The model of one entry: ``name`` plus its parameters (``lists``: each parameter may be a
    list, and ``train``/``test`` overrides are allowed, as for learners in suites)."""
    name = (Literal[entry.name], Field(description=entry.summary))  # type: ignore[valid-type]
    title = f"{kind} {entry.name}"
    if not lists:
        model = create_model(f"{kind}:{entry.name}", __base__=entry.params, name=name)
        return _titled(model, title)
    fields: dict[str, Any] = {k: _listable(v) for k, v in entry.params.model_fields.items()}
    fields["train"] = (TrainOverrides | None, Field(None, description="train overrides"))
    fields["test"] = (TestOverrides | None, Field(None, description="test overrides"))
    return _titled(
        create_model(f"{kind}:{entry.name}", __base__=Strict, name=name, **fields), title
    )


def _titled(model: type[BaseModel], title: str) -> type[BaseModel]:
    model.model_config["title"] = title
    model.model_rebuild(force=True)
    return model


def spec_union(kind: str, lists: bool | None = None) -> Any:
    """The type of one ``kind`` entry: a union discriminated on ``name`` over the registry.
    ``lists`` (default: for learners) allows list-valued parameters and train/test overrides."""
    lists = kind == "learner" if lists is None else lists
    entries = list(registry(kind))
    key = (kind, lists, *((e.name, e.params) for e in entries))
    if key not in _cache:
        members = [Annotated[_member(kind, e, lists), Tag(TAG + e.name)] for e in entries]
        names = ", ".join(e.name for e in entries)
        _cache[key] = Annotated[
            Union[tuple(members)],  # noqa: UP007
            Discriminator(
                _name_of,
                custom_error_type=COMPONENT_ERROR,
                custom_error_message=f"not a registered {kind}",
                custom_error_context={"kind": kind, "names": names},
            ),
        ]
    return _cache[key]


def registry_key() -> tuple[Any, ...]:
    """Changes whenever an entry is added to or removed from any registry (executors too)."""
    from memcomp.config.executors import EXECUTORS

    kinds = [*(registry(kind) for kind in KINDS), EXECUTORS]
    return tuple((e.name, e.params) for reg in kinds for e in reg)


def params_of(spec: BaseModel, skip: tuple[str, ...] = ("name", "train", "test")) -> dict[str, Any]:
    """A validated entry's parameters (defaults filled in), without ``name`` and overrides."""
    return {k: getattr(spec, k) for k in type(spec).model_fields if k not in skip}


def component_of(kind: str, spec: BaseModel) -> Component:
    """A validated dataset or backbone entry as a :class:`Component` holding an instance of its
    registered model. The entry's model subclasses it, so the values are taken as they are."""
    model = registry(kind).get(str(spec.name)).params
    fields = spec.model_fields_set - {"name"}
    return Component(str(spec.name), model.model_construct(fields, **params_of(spec)))


@dataclass(frozen=True)
class LearnerEntry:
    """A validated learner entry: ``values`` holds every parameter (a list for each of the
    ``axes``, the list-valued ones, sorted by name); ``model`` is the learner's registered
    parameter model, which validates each combination; ``written`` is the entry as given."""

    name: str
    model: type[Params]
    values: dict[str, Any]
    axes: tuple[str, ...]
    train: BaseModel | None
    test: BaseModel | None
    written: dict[str, Any]

    def count(self) -> int:
        """How many cells the entry gives (the product of its list lengths)."""
        n = 1
        for k in self.axes:
            n *= len(self.values[k])
        return n


def learner_entry(spec: BaseModel) -> LearnerEntry:
    """A validated learner entry (see :class:`LearnerEntry`)."""
    values = params_of(spec)
    return LearnerEntry(
        name=str(spec.name),
        model=registry("learner").get(str(spec.name)).params,
        values=values,
        axes=tuple(sorted(k for k, v in values.items() if isinstance(v, list))),
        train=getattr(spec, "train", None),
        test=getattr(spec, "test", None),
        written=spec.model_dump(exclude_unset=True),
    )
