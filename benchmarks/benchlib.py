"""What every benchmark shares: the ``SUMMARY`` line that ``run_all.py`` collects."""

from __future__ import annotations

import json


def summary(row: str, caseforum: float, bare: float | None, goal: str, unit: str,
            higher_is_better: bool = True) -> None:
    """Print one machine-readable row for ``benchmarks/run_all.py``'s table.

    ``higher_is_better=False`` for times (the ratio is then bare / CaseForum), so that
    a ratio of 1 always means "as fast as the bare framework".  ``bare`` is ``None`` for
    a row with an absolute goal and no anchor (``goal="< 1 s"``)."""
    ratio = (caseforum / bare if higher_is_better else bare / caseforum) \
        if caseforum and bare else None
    print("SUMMARY " + json.dumps({"row": row, "caseforum": round(caseforum, 2),
                                   "bare": None if bare is None else round(bare, 2),
                                   "ratio": ratio and round(ratio, 3),
                                   "goal": goal, "unit": unit}), flush=True)
