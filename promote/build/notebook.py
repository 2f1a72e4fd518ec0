"""Notebook entrypoints: refused unless their outputs are stripped, run as the script they hold.

Outputs are results, not code: a notebook that carries them shows reviewers numbers that no
test produced, and can hide data (or secrets) in the repository. Stripped (`nbstripout`,
`jupyter nbconvert --clear-output`), what is reviewed is the code alone.
"""

from __future__ import annotations

import json
from typing import Any

NOTEBOOK_SUFFIX = ".ipynb"


def is_notebook(entrypoint: str) -> bool:
    return entrypoint.endswith(NOTEBOOK_SUFFIX)


def _cells(text: str) -> list[dict[str, Any]]:
    document = json.loads(text)
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError("no list of cells")
    return cells


def unstripped(text: str) -> str | None:
    """Why a notebook may not be promoted as it is, or None when its outputs are stripped."""
    try:
        cells = _cells(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return f"is not a readable notebook ({exc.__class__.__name__})"
    carrying = [
        index
        for index, cell in enumerate(cells, start=1)
        if cell.get("cell_type") == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    if carrying:
        shown = ", ".join(str(i) for i in carrying[:5]) + (" ..." if len(carrying) > 5 else "")
        return (
            f"is a notebook with outputs in cell {shown}: strip them "
            "(nbstripout, or jupyter nbconvert --clear-output) and commit again"
        )
    return None


def as_script(text: str) -> str:
    """The notebook's code cells, in order, as one Python script (IPython magics left out)."""
    parts = []
    for cell in _cells(text):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source") or ""
        lines = ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        parts.append("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
    return "\n\n".join(parts) + "\n"
