"""JUnit XML of budget outcomes: one testcase per budget (failure, error or skipped)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from memcomp.budgets.measure import Outcome
from memcomp.fsutil import atomic_write_text as _atomic_write


def write_junit(
    outcomes: Sequence[Outcome], path: Path | str, name: str = "budgets", source: str = ""
) -> None:
    """JUnit XML: one testcase per budget; failure when exceeded, error, or skipped. The memory
    source measured is a property of the suite and is named in every testcase's output."""
    suite = ET.Element(
        "testsuite",
        name=f"memcomp check {name}",
        tests=str(len(outcomes)),
        failures=str(sum(o.verdict == "exceeded" for o in outcomes)),
        errors=str(sum(o.verdict == "error" for o in outcomes)),
        skipped=str(sum(o.verdict == "skipped" for o in outcomes)),
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    source = source or (outcomes[0].source if outcomes else "")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="memory_source", value=source)
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"memcomp.budgets.{name}",
            name=f"[{o.budget.index}] {o.budget.label}",
            time=f"{o.seconds:.3f}",
        )
        if o.verdict == "exceeded":
            fail = ET.SubElement(case, "failure", message=o.message, type="MemoryBudgetExceeded")
            fail.text = f"{o.message}\nsource: {o.source}\ncell: {o.budget.cell.label()}"
        elif o.verdict == "error":
            ET.SubElement(case, "error", message=o.message, type="MeasurementError")
        elif o.verdict == "skipped":
            ET.SubElement(case, "skipped", message=o.message)
        if o.measured_mb is not None:
            out = ET.SubElement(case, "system-out")
            out.text = f"peak_mb={o.measured_mb:.4f} allowed_mb={o.allowed_mb} source={o.source}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    _atomic_write(Path(path), ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
