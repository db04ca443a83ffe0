"""Parameters of the built-in datasets and what each can supply, known without loading any data.

Torch-free: validation, listing and the JSON Schema use these models without importing a loader.
:meth:`DatasetParams.supply` declares the most a dataset can supply (classes per split, images
per class, image shape), so that ``validate`` can reject settings that cannot run before any data
is loaded (:func:`setting_problems`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from memcomp.registry import Params, PathOption

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Standard:
    """A standard benchmark: classes per split and images per class (or per split)."""

    classes: dict[str, int]
    per_class: int | None = None
    per_split: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSupply:
    """The most a dataset can supply, declared without loading it.

    ``classes``: at most this many classes per split (None: unknown); ``per_class``: no class has
    more images (None: unknown); ``channels`` and ``image_size``: the shape of every image
    (``channels`` x ``image_size`` x ``image_size``; None: unknown).
    """

    classes: dict[str, int] | None
    per_class: int | None
    channels: int | None
    image_size: int | None


class DatasetParams(Params):
    """Options every dataset accepts."""

    image_size: int = 28

    def supply(self) -> DataSupply | None:
        """What this dataset can supply at most; None when it cannot be known without loading."""
        return None


def setting_problems(
    name: str, supply: DataSupply | None, ways: int, shots: int, queries: int
) -> list[str]:
    """Why ``ways``-way ``shots``-shot episodes with ``queries`` queries cannot be drawn from
    every split of a dataset that supplies at most ``supply`` (empty: no problem known)."""
    if supply is None:
        return []
    out = []
    for split, n in (supply.classes or {}).items():
        if n < ways:
            out.append(
                f"dataset {name!r}: split {split!r} has at most {n} classes, fewer than "
                f"ways={ways}; lower `ways` in the suite's settings"
            )
    need = shots + queries
    if supply.per_class is not None and supply.per_class < need:
        out.append(
            f"dataset {name!r}: classes have at most {supply.per_class} images, fewer than "
            f"shots+queries={need}; lower shots or queries"
        )
    return out


# ------------------------------------------------------------------ generated datasets

# Letters kept for each min_fonts with matplotlib's bundled fonts (lookalikes merged), measured
# with `memcomp.data.glyph_fonts`; tests/test_glyphs.py checks the default against a build.
GLYPH_CLASSES = {1: 665, 2: 660, 3: 660, 4: 660, 5: 538, 6: 538, 7: 538, 8: 538, 9: 426}
GLYPH_CLASSES |= {10: 426, 11: 422, 12: 422, 13: 292, 14: 283, 15: 283, 16: 283}
GLYPH_CLASSES |= {m: 52 for m in range(17, 23)} | {23: 26}
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def glyph_split_sizes(n: int) -> dict[str, int]:
    """Classes per split of ``n`` glyph classes (as ``glyphs.split_classes`` splits them)."""
    n_train = round(SPLIT_FRACTIONS[0] * n)
    n_val = round(SPLIT_FRACTIONS[1] * n)
    return {"train": n_train, "val": n_val, "test": n - n_train - n_val}


class GlyphsParams(DatasetParams):
    """Options of the ``glyphs`` dataset."""

    image_size: int = Field(28, ge=8, le=256, description="side of the square images")
    examples: int = Field(20, ge=1, le=500, description="images per class")
    min_fonts: int = Field(16, ge=1, description="keep letters drawn by at least this many fonts")
    fonts: Literal["bundled", "system"] = Field(
        "bundled", description="matplotlib's bundled fonts, or those plus the system's fonts"
    )
    seed: int = Field(0, description="seed of the train/val/test class split")

    def supply(self) -> DataSupply:
        classes = None
        if self.fonts == "bundled":
            classes = glyph_split_sizes(GLYPH_CLASSES.get(self.min_fonts, 0))
        return DataSupply(classes, self.examples, 1, self.image_size)


class SyntheticParams(DatasetParams):
    """Options of the ``synthetic`` dataset."""

    image_size: int = Field(84, ge=1, le=1024, description="side of the square images")
    channels: int = Field(3, ge=1, le=16, description="channels per image")
    train_classes: int = Field(64, ge=1)
    val_classes: int = Field(16, ge=1)
    test_classes: int = Field(20, ge=1)
    images_per_class: int = Field(30, ge=1)
    seed: int = 0

    def supply(self) -> DataSupply:
        classes = {"train": self.train_classes, "val": self.val_classes}
        classes["test"] = self.test_classes
        return DataSupply(classes, self.images_per_class, self.channels, self.image_size)


# ------------------------------------------------------------------ real benchmarks


class RealParams(DatasetParams):
    """Options shared by the real benchmark loaders.

    A subclass declares ``SPEC`` (``"module:attribute"`` of its :class:`~memcomp.data.realdata.
    RealSpec`, which ``memcomp data status|prepare`` use), ``CHANNELS`` and :meth:`standard`.
    """

    SPEC: ClassVar[str] = ""
    CHANNELS: ClassVar[int] = 3
    MAX_PER_CLASS: ClassVar[int | None] = None  # when the standard gives per-split counts only

    root: PathOption | None = Field(
        None, description="dataset folder (default: data_root()/<name>)"
    )
    normalize: bool = Field(True, description="normalise episodes by the train mean/std")
    strict: bool = Field(
        True,
        description="check the standard class counts per split and images per class "
        "(set false to load a subset of the benchmark)",
    )
    min_per_class: int = Field(1, ge=1, description="fail if a class has fewer images")

    def standard(self) -> Standard:
        raise NotImplementedError

    @classmethod
    def spec(cls) -> Any:
        """The dataset's ``RealSpec`` (imports its loader module)."""
        module, _, attr = cls.SPEC.partition(":")
        return getattr(importlib.import_module(module), attr)

    def supply(self) -> DataSupply:
        # a subset (strict=false) has at most the standard's classes and images per class
        std = self.standard()
        per_class = std.per_class if std.per_class is not None else self.MAX_PER_CLASS
        return DataSupply(dict(std.classes), per_class, self.CHANNELS, self.image_size)


def _standard(classes: tuple[int, int, int], per_class: int | None = None, **kw: Any) -> Standard:
    return Standard(dict(zip(SPLITS, classes, strict=True)), per_class, **kw)


class CifarParams(RealParams):
    """Options of the CIFAR-100 based benchmarks."""

    image_size: int = Field(32, ge=4, description="images are resized to image_size^2")
    download: bool = Field(False, description="fetch CIFAR-100 with torchvision if missing")


class CifarFSParams(CifarParams):
    """Options of ``cifar-fs`` (64/16/20 classes of 600 images)."""

    SPEC: ClassVar[str] = "memcomp.data.cifar:CIFAR_FS"

    def standard(self) -> Standard:
        return _standard((64, 16, 20), 600)


class FC100Params(CifarParams):
    """Options of ``fc100`` (60/20/20 classes of 600 images)."""

    SPEC: ClassVar[str] = "memcomp.data.cifar:FC100"

    def standard(self) -> Standard:
        return _standard((60, 20, 20), 600)


OMNIGLOT_SPLIT = (1200, 211, 212)  # Vinyals et al. split of the 1,623 characters
OMNIGLOT_PER_CHAR = 20


class OmniglotParams(RealParams):
    """Options of ``omniglot``."""

    SPEC: ClassVar[str] = "memcomp.data.omniglot:SPEC"
    CHANNELS: ClassVar[int] = 1

    image_size: int = Field(28, ge=4, description="images are resized to image_size^2")
    rotations: bool = Field(False, description="add 90/180/270-degree rotated classes")
    download: bool = Field(False, description="fetch the zips with torchvision if missing")

    def standard(self) -> Standard:
        r = 4 if self.rotations else 1
        return _standard(tuple(s * r for s in OMNIGLOT_SPLIT), OMNIGLOT_PER_CHAR)  # type: ignore[arg-type]


class MiniParams(RealParams):
    """Options of ``mini-imagenet`` (Ravi split, 64/16/20 classes of 600 images)."""

    SPEC: ClassVar[str] = "memcomp.data.miniimagenet:SPEC"

    image_size: int = Field(84, ge=4, description="images are resized to image_size^2")

    def standard(self) -> Standard:
        return _standard((64, 16, 20), 600)


class TieredParams(RealParams):
    """Options of ``tiered-imagenet`` (351/97/160 classes; images counted per split)."""

    SPEC: ClassVar[str] = "memcomp.data.tieredimagenet:SPEC"
    MAX_PER_CLASS: ClassVar[int | None] = 1300  # ILSVRC-12 has at most 1,300 train images a class

    image_size: int = Field(84, ge=4, description="images are resized to image_size^2")

    def standard(self) -> Standard:
        return _standard(
            (351, 97, 160), per_split={"train": 448_695, "val": 124_261, "test": 206_209}
        )
