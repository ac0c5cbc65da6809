"""Usage statistics: the access log, counted per month and office."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from caseforum.authz import Viewer
from caseforum.models import AccessLog, Application, Document, utcnow

ACTIONS = ("view", "download", "print", "compare")


def log_access(
    session: Session, *, viewer: Viewer, doc: Document, app: Application, action: str
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r}")
    session.add(AccessLog(user_id=viewer.user_id, office_code=viewer.office_code,
                          document_id=doc.id or 0, application_id=app.id or 0,
                          providing_office=app.office_code, action=action))


@dataclass
class Series:
    """Counts per month (columns) and office (rows)."""

    months: list[str]
    rows: dict[str, list[int]]

    @property
    def totals(self) -> list[int]:
        return [sum(r[i] for r in self.rows.values()) for i in range(len(self.months))]


def _months(since: date, until: date) -> list[str]:
    out = []
    y, m = since.year, since.month
    while (y, m) <= (until.year, until.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def usage(
    session: Session, *, office: str | None, months: int = 12, action: str | None = None
) -> tuple[Series, Series]:
    """(by accessing office, by providing office) for the last ``months``.

    ``office`` limits the counts to accesses *by* or *of* that office (what an
    office admin may see); ``None`` counts everything (platform admins).
    """
    today = utcnow().date()
    start = (today.replace(day=1) - timedelta(days=31 * (months - 1))).replace(day=1)
    since = datetime(start.year, start.month, 1, tzinfo=UTC)
    query = select(AccessLog.at, AccessLog.office_code, AccessLog.providing_office).where(
        AccessLog.at >= since)
    if action:
        query = query.where(AccessLog.action == action)
    labels = _months(start, today)
    index = {m: i for i, m in enumerate(labels)}
    by_accessing: dict[str, Counter[int]] = defaultdict(Counter)
    by_providing: dict[str, Counter[int]] = defaultdict(Counter)
    for at, accessing, providing in session.exec(query):
        month = index.get(f"{at.year:04d}-{at.month:02d}")
        if month is None:
            continue
        if office is None or accessing == office:
            by_accessing[accessing or "public"][month] += 1
        if office is None or providing == office:
            by_providing[providing][month] += 1

    def series(data: dict[str, Counter[int]]) -> Series:
        return Series(labels, {k: [data[k][i] for i in range(len(labels))]
                               for k in sorted(data)})

    return series(by_accessing), series(by_providing)


def to_csv(accessing: Series, providing: Series) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["perspective", "office", *accessing.months])
    for name, s in (("accessing", accessing), ("providing", providing)):
        for office, counts in s.rows.items():
            writer.writerow([name, office, *counts])
    return out.getvalue()


PALETTE = ["#1f5fa8", "#c0392b", "#1d7a46", "#8a5a00", "#6c3483", "#117a8b", "#7f8c8d",
           "#b9770e", "#2e4053", "#a04000"]


def bar_chart_svg(series: Series, *, title: str, width: int = 720, height: int = 240) -> str:
    """A stacked bar chart as SVG markup (escaped labels, no script, no style tag)."""
    from html import escape

    pad_l, pad_b, pad_t = 40, 40, 20
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    totals = series.totals
    peak = max(totals + [1])
    n = max(len(series.months), 1)
    bar_w = plot_w / n * 0.7
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f"<title>{escape(title)}</title>"]
    for frac in (0, 0.5, 1) if peak >= 2 else (0, 1):  # no half-line label "0" twice
        y = pad_t + plot_h * (1 - frac)
        parts.append(f'<line x1="{pad_l}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#d9dee5"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{round(peak * frac)}</text>')
    colours = {office: PALETTE[i % len(PALETTE)] for i, office in enumerate(series.rows)}
    for i, month in enumerate(series.months):
        x = pad_l + plot_w / n * i + (plot_w / n - bar_w) / 2
        y = pad_t + plot_h
        for office, counts in series.rows.items():
            if counts[i]:
                h = plot_h * counts[i] / peak
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                    f'fill="{colours[office]}"><title>{escape(office)} {month}: '
                    f"{counts[i]}</title></rect>")
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - pad_b + 14}" '
                     f'text-anchor="middle" font-size="10">{month[2:]}</text>')
    lx = pad_l
    for office, colour in colours.items():
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14}" y="{height - 5}" '
                     f'font-size="11">{escape(office)}</text>')
        lx += 20 + 8 * len(office) + 14
    parts.append("</svg>")
    return "".join(parts)
