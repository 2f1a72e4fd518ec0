"""A drift result as a report: markdown, and an HTML page with one plot per drifted feature.

Both render the same tables (`_sections`). The plots are inline SVG drawn here: training against
now, as cumulative shares over the profile's edges for numbers and as shares per category.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from promote.drift.compare import DatasetDrift, Distribution, FeatureDrift

if TYPE_CHECKING:
    from promote.drift.check import DriftResult

MARKDOWN_FILE = "drift.md"
HTML_FILE = "drift.html"

TRAINING_COLOUR = "#1f77b4"
CURRENT_COLOUR = "#d62728"
PLOT_WIDTH, PLOT_HEIGHT, MARGIN = 640, 260, 44


class Section(NamedTuple):
    title: str
    lines: list[str]  # sentences before the table
    headers: list[str]
    rows: list[list[str]]
    plotted: list[FeatureDrift]  # the drifted features, which the HTML page plots


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def verdict(result: DriftResult) -> str:
    """One line: drifted or not, and where."""
    found = [
        f"{dataset.name}: {len(dataset.drifted_features)} of {len(dataset.features)} features"
        + (" and the target" if dataset.target is not None and dataset.target.drifted else "")
        for dataset in result.datasets
        if dataset.drifted
    ]
    if result.concept_drifted:
        worse = ", ".join(metric.metric for metric in result.concept if metric.drifted)
        found.append(f"concept: {worse}")
    if not found:
        return f"{result.champion}: no drift in {result.source}"
    return f"{result.champion}: DRIFT ({'; '.join(found)})"


def _feature_row(feature: FeatureDrift) -> list[str]:
    return [
        feature.column,
        feature.kind,
        feature.method or "",
        _number(feature.score),
        _number(feature.threshold),
        _number(feature.psi),
        f"{feature.missing[0]:.1%} -> {feature.missing[1]:.1%}",
        "DRIFT" if feature.drifted else "ok",
        feature.reason,
    ]


FEATURE_HEADERS = [
    "column",
    "kind",
    "method",
    "score",
    "threshold",
    "PSI",
    "missing",
    "verdict",
    "why",
]


def _dataset_section(dataset: DatasetDrift) -> Section:
    target = dataset.target
    lines = [
        f"Compared with the training's `{dataset.reference}`; {dataset.rows} rows now. "
        f"{len(dataset.drifted_features)} of {len(dataset.features)} features drifted: a share "
        f"of {dataset.share:.2f}, drift beyond {dataset.drift_share:.2f}"
        + (
            f"; the target {target.column} {'drifted' if target.drifted else 'did not'}"
            if target
            else ""
        )
        + f". {'DRIFT' if dataset.drifted else 'No drift'}."
    ]
    if dataset.unprofiled:
        lines.append(f"Not in the training profile: {', '.join(dataset.unprofiled)}.")
    rows = [_feature_row(feature) for feature in dataset.features]
    plotted = dataset.drifted_features
    if dataset.target is not None:
        target_row = _feature_row(dataset.target)
        target_row[0] += " (target)"
        rows.append(target_row)
        plotted += [dataset.target] if dataset.target.drifted else []
    drawable = [feature for feature in plotted if feature.distribution is not None]
    return Section(f"Data: {dataset.name}", lines, FEATURE_HEADERS, rows, drawable)


def _sections(result: DriftResult) -> list[Section]:
    sections = [_dataset_section(dataset) for dataset in result.datasets]
    if result.labels is not None:
        lines = [f"The champion scored on `{result.source}`, labels in `{result.labels}`."]
        lines += [f"Left out: {reason}." for reason in result.left_out]
        rows = [
            [
                metric.metric,
                _number(metric.trained),
                _number(metric.current),
                _number(metric.tolerance),
                "higher" if metric.higher_is_better else "lower",
                "DRIFT" if metric.drifted else "ok",
            ]
            for metric in result.concept
        ]
        headers = ["metric", "at training", "now", "tolerance", "better", "verdict"]
        sections.append(Section("Concept", lines, headers, rows, []))
    return sections


def markdown(result: DriftResult) -> str:
    out = [f"# Drift of {result.registered}", "", f"**{verdict(result)}**", ""]
    out.append(f"Champion {result.champion} (run `{result.run_id}`), checked {result.checked_at}.")
    for section in _sections(result):
        out += ["", f"## {section.title}", "", *section.lines, ""]
        out.append("| " + " | ".join(section.headers) + " |")
        out.append("|" + " --- |" * len(section.headers))
        out += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
            for row in section.rows
        ]
    return "\n".join(out) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scaled(
    values: Sequence[float], low: float, high: float, start: float, end: float
) -> list[float]:
    span = (high - low) or 1.0
    return [start + (value - low) / span * (end - start) for value in values]


def _cumulative_plot(distribution: Distribution) -> list[str]:
    """Two step curves: the share of values at or under each edge, training and now."""
    edges = [float(label) for label in distribution.labels]
    xs = _scaled(edges, min(edges), max(edges), MARGIN, PLOT_WIDTH - MARGIN)
    parts = []
    for shares, colour in (
        (distribution.training, TRAINING_COLOUR),
        (distribution.current, CURRENT_COLOUR),
    ):
        ys = _scaled(shares, 0.0, 1.0, PLOT_HEIGHT - MARGIN, MARGIN)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
    for x, label in ((xs[0], distribution.labels[0]), (xs[-1], distribution.labels[-1])):
        parts.append(
            f'<text x="{x:.1f}" y="{PLOT_HEIGHT - MARGIN + 16}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    parts.append(f'<text x="{MARGIN - 6}" y="{MARGIN + 4}" text-anchor="end">100%</text>')
    return parts


def _bar_plot(distribution: Distribution) -> list[str]:
    """Side-by-side bars per category: its share at training and now."""
    count = len(distribution.labels)
    slot = (PLOT_WIDTH - 2 * MARGIN) / count
    top = max([*distribution.training, *distribution.current, 1e-9])
    parts = []
    for index, label in enumerate(distribution.labels):
        left = MARGIN + index * slot
        for offset, share, colour in (
            (0.1, distribution.training[index], TRAINING_COLOUR),
            (0.5, distribution.current[index], CURRENT_COLOUR),
        ):
            height = share / top * (PLOT_HEIGHT - 2 * MARGIN)
            parts.append(
                f'<rect x="{left + offset * slot:.1f}" y="{PLOT_HEIGHT - MARGIN - height:.1f}" '
                f'width="{0.4 * slot:.1f}" height="{height:.1f}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{left + slot / 2:.1f}" y="{PLOT_HEIGHT - MARGIN + 16}" '
            f'text-anchor="middle">{html.escape(label[:12])}</text>'
        )
    parts.append(f'<text x="{MARGIN - 6}" y="{MARGIN + 4}" text-anchor="end">{top:.0%}</text>')
    return parts


def plot(feature: FeatureDrift) -> str:
    """One feature at training and now, as an inline SVG."""
    assert feature.distribution is not None
    distribution = feature.distribution
    drawn = _cumulative_plot(distribution) if distribution.cumulative else _bar_plot(distribution)
    axis = (
        f'<line x1="{MARGIN}" y1="{PLOT_HEIGHT - MARGIN}" x2="{PLOT_WIDTH - MARGIN}" '
        f'y2="{PLOT_HEIGHT - MARGIN}" stroke="#888"/>'
    )
    legend = (
        f'<text x="{MARGIN}" y="20" font-weight="bold">{html.escape(feature.column)}</text>'
        f'<text x="{PLOT_WIDTH - MARGIN}" y="20" text-anchor="end">'
        f'<tspan fill="{TRAINING_COLOUR}">training</tspan> '
        f'<tspan fill="{CURRENT_COLOUR}">now</tspan></text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        f'font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="{html.escape(feature.column)}: training against now">'
        f"{axis}{''.join(drawn)}{legend}</svg>"
    )


def html_page(result: DriftResult) -> str:
    body = [
        f"<h1>Drift of {html.escape(result.registered)}</h1>",
        f"<p><strong>{html.escape(verdict(result))}</strong></p>",
        f"<p>Champion {html.escape(result.champion)} (run <code>{html.escape(result.run_id)}"
        f"</code>), checked {html.escape(result.checked_at)}.</p>",
    ]
    for section in _sections(result):
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body += [f"<p>{html.escape(line)}</p>" for line in section.lines]
        body.append(_table(section.headers, section.rows))
        body += [
            f"<figure>{plot(feature)}<figcaption>{html.escape(feature.reason)}</figcaption>"
            "</figure>"
            for feature in section.plotted
        ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:72em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
        "text-align:left}figure{margin:1em 0}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Drift of {html.escape(result.registered)}</title><style>{style}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(result: DriftResult, folder: Path) -> list[Path]:
    """The report as markdown and as an HTML page in `folder`; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {MARKDOWN_FILE: markdown(result), HTML_FILE: html_page(result)}
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
