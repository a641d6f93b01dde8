"""Formatting, KPI cards and chart builders shared by the pages.

Business users read these at a glance, so every number leaves here with its unit (%, days, hours,
currency) and every change says whether it is good news (blue) or bad news (vermillion).

Colours are the Okabe-Ito palette, which people with any common colour-vision deficiency tell
apart: good and bad are never a red/green pair, and every tone also comes with a sign or a word.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

# Okabe & Ito (2008), "Color Universal Design": distinguishable under protanopia, deuteranopia
# and tritanopia.
BLUE = "#0072b2"
VERMILLION = "#d55e00"
ORANGE = "#e69f00"
SKY = "#56b4e9"
GREY = "#94a3b8"
#: The tones of good and bad news (never red against green).
GOOD = BLUE
BAD = VERMILLION
#: Alert severities (the severity is always written out too).
SEVERITY = {"error": VERMILLION, "warning": ORANGE, "info": GREY}

#: Panel's notices in the palette: good news light blue, not Bootstrap's green; warnings orange.
NOTICE_CSS = f"""
:host(.alert-success) {{ color: #075985; background-color: #e0f2fe; border-color: {SKY}; }}
:host(.alert-warning) {{ color: #8a3b00; background-color: #fdebd3; border-color: {ORANGE}; }}
"""

CARD_CSS = """
:host { width: 100%; }
.kpis { display: grid; grid-template-columns: repeat(var(--columns), minmax(0, 1fr)); gap: 8px; }
@media (max-width: 900px) { .kpis { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.kpi { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 12px 16px;
       box-shadow: 0 1px 2px rgba(0,0,0,.05); font-family: system-ui, sans-serif;
       min-height: 96px; }
.kpi .label { color: #475569; font-size: 13px; font-weight: 600; text-transform: uppercase;
              letter-spacing: .03em; }
.kpi .value { color: #0f172a; font-size: 30px; font-weight: 700; margin: 4px 0 2px; }
.kpi .delta { font-size: 13px; color: #64748b; }
.kpi .delta.good { color: #005a8c; } .kpi .delta.bad { color: #b34700; }
.kpi .hint { color: #94a3b8; font-size: 11px; margin-top: 2px; }
"""


def is_missing(value: object) -> bool:
    """True for None, NaN and pandas' NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def pct(value: object, digits: int = 1) -> str:
    """0.1234 -> '12.3%'."""
    return "—" if is_missing(value) else f"{float(value) * 100:.{digits}f}%"


def days(value: object, digits: int = 1) -> str:
    """1.25 -> '1.3 days'."""
    return "—" if is_missing(value) else f"{float(value):.{digits}f} days"


def hours(value: object) -> str:
    """17.7 -> '17.7 h'."""
    return "—" if is_missing(value) else f"{float(value):.1f} h"


def money(value: object) -> str:
    """36161.8 -> '$36,162'; small values keep cents."""
    if is_missing(value):
        return "—"
    number = float(value)
    return f"${number:,.2f}" if abs(number) < 1000 else f"${number:,.0f}"


def count(value: object) -> str:
    """288.0 -> '288'."""
    return "—" if is_missing(value) else f"{float(value):,.0f}"


@dataclass(frozen=True)
class Kpi:
    """How one KPI is named, formatted and judged."""

    key: str
    label: str
    formatter: Callable[[object], str]
    lower_is_better: bool | None
    hint: str = ""
    change_in_points: bool = False


def delta_text(kpi: Kpi, current: object, previous: object, period_label: str) -> tuple[str, str]:
    """'▲ 3.2 pts vs previous 90 days' and its CSS class (good, bad or neutral)."""
    if is_missing(current) or is_missing(previous):
        return f"no comparison ({period_label})", "neutral"
    diff = float(current) - float(previous)
    arrow = "▲" if diff > 0 else ("▼" if diff < 0 else "=")
    if kpi.change_in_points:
        amount = f"{abs(diff) * 100:.1f} pts"
    elif float(previous) != 0:
        amount = f"{abs(diff) / abs(float(previous)) * 100:.1f}%"
    else:
        amount = kpi.formatter(abs(diff))
    relative = abs(diff) / abs(float(previous)) if float(previous) else abs(diff)
    if relative < 0.0005:
        return f"= unchanged vs {period_label}", "neutral"
    if kpi.lower_is_better is None:
        tone = "neutral"
    else:
        tone = "good" if (diff < 0) == kpi.lower_is_better else "bad"
    return f"{arrow} {amount} vs {period_label}", tone


def _kpi_html(kpi: Kpi, current: object, previous: object, period_label: str | None) -> str:
    """One KPI card's HTML; ``data-kpi`` lets browser tests find it. No label, no comparison."""
    text, tone = delta_text(kpi, current, previous, period_label) if period_label else ("", "")
    hint = f'<div class="hint">{html.escape(kpi.hint)}</div>' if kpi.hint else ""
    return (
        f'<div class="kpi" data-kpi="{kpi.key}"><div class="label">{html.escape(kpi.label)}</div>'
        f'<div class="value">{html.escape(kpi.formatter(current))}</div>'
        f'<div class="delta {tone}">{html.escape(text)}</div>{hint}</div>'
    )


def kpi_grid(
    cards: list[tuple[Kpi, object, object]], period_label: str | None, columns: int = 5
) -> str:
    """KPI cards ``(kpi, current, previous)`` in rows of ``columns``, as one HTML block.

    One block for all cards, shown by one pane (see :func:`live_cards`): every pane is a Bokeh
    model the server builds and the browser lays out before the page shows anything, and these
    cards are what a user waits for.
    """
    body = "".join(_kpi_html(kpi, cur, prev, period_label) for kpi, cur, prev in cards)
    return f'<div class="kpis" style="--columns:{columns}">{body}</div>'


def live_cards(store: Any, render: Callable[[Any, Any], str]) -> pn.pane.HTML:
    """KPI cards that follow the filters: ``render(store, state)`` gives their HTML.

    The pane stays and only its text changes on a filter change, so the browser receives the
    new numbers as one small patch instead of a new model to lay out. Cards are a page's
    headline, so they are computed with the page, never deferred.
    """
    pane = pn.pane.HTML(
        render(store, store.state), stylesheets=[CARD_CSS], sizing_mode="stretch_width", margin=4
    )
    store.param.watch(lambda event: setattr(pane, "object", render(store, event.new)), "state")
    return pane


def page_header(title: str, subtitle: str) -> pn.pane.HTML:
    """A page title and one sentence on what the page is for."""
    return pn.pane.HTML(
        f'<h2 style="margin:0 0 2px;font-family:system-ui;color:#0f172a">{html.escape(title)}</h2>'
        f'<div style="color:#475569;font-family:system-ui;font-size:14px">'
        f"{html.escape(subtitle)}</div>",
        sizing_mode="stretch_width",
        margin=(4, 8, 8, 8),
    )


def table(frame: pd.DataFrame, **options: Any) -> pn.widgets.Tabulator:
    """A read-only table as every page shows one: no index, no editing, full width, fitted columns.

    ``options`` (formatters, pagination, widths, css_classes, ...) add to or override these.
    """
    defaults: dict[str, Any] = {
        "show_index": False,
        "disabled": True,
        "sizing_mode": "stretch_width",
        "layout": "fit_data_table",
    }
    return pn.widgets.Tabulator(frame, **{**defaults, **options})


def notice(message: str, kind: str = "info") -> pn.pane.Alert:
    """A friendly explanation where a chart would be empty."""
    return pn.pane.Alert(
        message, alert_type=kind, sizing_mode="stretch_width", stylesheets=[NOTICE_CSS]
    )


def _figure(title: str, height: int, **kwargs: object) -> figure:
    plot = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        toolbar_location=None,
        tools="",
        **kwargs,
    )
    plot.title.text_font_size = "14px"
    plot.title.text_color = "#0f172a"
    plot.outline_line_color = None
    plot.grid.grid_line_color = "#eef2f7"
    plot.axis.axis_line_color = "#cbd5e1"
    plot.axis.major_tick_line_color = None
    plot.axis.minor_tick_line_color = None
    return plot


def bokeh(plot: figure) -> pn.pane.Bokeh:
    """Wrap a figure so it stretches with the page."""
    return pn.pane.Bokeh(plot, sizing_mode="stretch_width", margin=4)


def hbar_rate(
    frame: pd.DataFrame,
    label_col: str,
    rate_col: str,
    title: str,
    volume_col: str,
    higher_is_bad: bool = True,
) -> pn.pane.Bokeh:
    """Horizontal bars of a rate per category, worst on top, the bad side of the mean in BAD."""
    ordered = frame.sort_values(rate_col, ascending=higher_is_bad)
    labels = [str(v) for v in ordered[label_col]]
    mean = float(
        (ordered[rate_col] * ordered[volume_col]).sum() / max(ordered[volume_col].sum(), 1)
    )
    source = ColumnDataSource(
        {
            "label": labels,
            "rate": ordered[rate_col].astype(float).tolist(),
            "volume": ordered[volume_col].astype(float).tolist(),
            "text": [pct(v, 0) for v in ordered[rate_col]],
            "color": [BAD if (v > mean) == higher_is_bad else GOOD for v in ordered[rate_col]],
        }
    )
    plot = _figure(title, max(140, 34 * len(labels) + 60), y_range=labels, x_range=(0, 1.08))
    plot.hbar(y="label", right="rate", height=0.7, color="color", source=source)
    plot.text(
        x="rate",
        y="label",
        text="text",
        source=source,
        x_offset=4,
        y_offset=7,
        text_font_size="12px",
        text_color="#334155",
    )
    plot.xaxis.formatter = NumeralTickFormatter(format="0%")
    plot.add_tools(
        HoverTool(tooltips=[("", "@label"), ("rate", "@text"), ("orders", "@volume{0,0}")])
    )
    return bokeh(plot)


def time_bars(frame: pd.DataFrame, x: str, y: str, title: str, money_axis: bool) -> pn.pane.Bokeh:
    """Bars over time (orders or revenue per day/week); :func:`show_over_time` refreshes them."""
    plot = _figure(title, 240, x_axis_type="datetime")
    plot.vbar(
        x="x",
        top="y",
        width=_bar_width_ms(frame[x]),
        color=BLUE,
        alpha=0.85,
        source=_time_source(frame, x, y),
    )
    plot.yaxis.formatter = NumeralTickFormatter(format="$0,0" if money_axis else "0,0")
    plot.y_range.start = 0
    plot.add_tools(
        HoverTool(tooltips=[("", "@x{%F}"), ("", "@y{0,0}")], formatters={"@x": "datetime"})
    )
    return bokeh(plot)


def time_rate_line(frame: pd.DataFrame, x: str, y: str, title: str) -> pn.pane.Bokeh:
    """A rate over time as a line with points; :func:`show_over_time` refreshes it."""
    source = _time_source(frame, x, y)
    plot = _figure(title, 240, x_axis_type="datetime")
    plot.line(x="x", y="y", color=VERMILLION, line_width=2.5, source=source)
    plot.scatter(x="x", y="y", color=VERMILLION, size=5, source=source)
    plot.yaxis.formatter = NumeralTickFormatter(format="0%")
    plot.y_range.start = 0
    plot.add_tools(
        HoverTool(tooltips=[("", "@x{%F}"), ("late", "@y{0.0%}")], formatters={"@x": "datetime"})
    )
    return bokeh(plot)


def show_over_time(chart: pn.pane.Bokeh, frame: pd.DataFrame, x: str, y: str, title: str) -> None:
    """Show new data in a chart made by :func:`time_bars` or :func:`time_rate_line`, in place.

    Only the data (and the title and bar width) travel to the browser, which keeps the figure:
    re-creating it on each filter change cost about 60 ms on the server and a new layout in
    the browser.
    """
    plot = chart.object
    plot.title.text = title
    data = _time_source(frame, x, y).data
    for renderer in plot.renderers:
        renderer.data_source.data = dict(data)
        if hasattr(renderer.glyph, "width"):
            renderer.glyph.width = _bar_width_ms(frame[x])


def _time_source(frame: pd.DataFrame, x: str, y: str) -> ColumnDataSource:
    return ColumnDataSource({"x": pd.to_datetime(frame[x]), "y": frame[y].astype(float)})


def _bar_width_ms(values: pd.Series) -> float:
    """Bar width for daily or weekly buckets, with a small gap."""
    stamps = pd.to_datetime(values).sort_values()
    step = stamps.diff().min() if len(stamps) > 1 else pd.Timedelta(days=1)
    step = step if pd.notna(step) else pd.Timedelta(days=1)
    return step.total_seconds() * 1000 * 0.8


def reactive(store: object, render: Callable[..., pn.viewable.Viewable]) -> pn.param.ParamFunction:
    """A part of a page that re-renders when the store's filter state changes.

    ``lazy`` keeps pages that are not on screen from querying at all, and on the page a session
    opens with, the part is built right after the page is shown (``defer_load``), so the
    headline numbers (:func:`live_cards`) are not held back by charts and tables.
    """
    return pn.param.ParamFunction(
        pn.bind(render, store, store.param.state),  # type: ignore[attr-defined]
        lazy=True,
        defer_load=True,
        loading_indicator=True,
        sizing_mode="stretch_width",
    )


def static(store: Any, render: Callable[..., pn.viewable.Viewable]) -> pn.param.ParamFunction:
    """A part of a page that does not depend on the filters, built right after the page is.

    A function is run again when the store switches to a newly published version. A class
    (like :class:`~panel_app.views.overview.Trends`) is built once: it follows the store's
    state itself, and a new version re-runs it through that state.
    """
    if isinstance(render, type):
        bound = pn.bind(render, store)
    else:
        bound = pn.bind(lambda store, _version: render(store), store, store.param.version)
    return pn.param.ParamFunction(bound, lazy=True, defer_load=True, sizing_mode="stretch_width")


# ---- the live status in the header ---------------------------------------------------------
LIVE_CSS = """
:host { margin-left: auto; }
.live { font-family: system-ui, sans-serif; font-size: 13px; color: #e2e8f0; display: flex;
        gap: 6px; align-items: center; flex-wrap: wrap; justify-content: flex-end; }
.live b { color: #fff; }
.live .newly-high-risk { background: #e69f00; color: #1f2937; border-radius: 999px;
                         padding: 2px 10px; font-weight: 700; }
.live .newly-high-risk.none { background: #e2e8f0; color: #334155; font-weight: 600; }
.live .problem { background: #d55e00; color: #fff; border-radius: 6px; padding: 2px 8px; }
"""
#: Order ids listed in the badge's tooltip.
NEWLY_HIGH_RISK_SHOWN = 10


def newly_high_risk_badge(order_ids: list[str]) -> str:
    """'3 orders newly high-risk', with the first ids in its tooltip (``data-count`` for tests)."""
    n = len(order_ids)
    shown = ", ".join(order_ids[:NEWLY_HIGH_RISK_SHOWN]) + (
        ", …" if n > NEWLY_HIGH_RISK_SHOWN else ""
    )
    noun = "order" if n == 1 else "orders"
    tone = "" if n else " none"
    return (
        f'<span class="newly-high-risk{tone}" data-count="{n}" '
        f'title="{html.escape(shown or "no order became high-risk")}">'
        f"{n:,} {noun} newly high-risk</span>"
    )


def live_status(
    updated_at: datetime,
    as_of: str,
    version: str,
    newly_high_risk: list[str] | None,
    problem: str | None,
) -> str:
    """The header's 'Updated HH:MM:SS · data as of …' line, the badge and any problem, as HTML.

    ``newly_high_risk`` is None until the session has seen a second snapshot. Everything that
    comes from data or errors is escaped.
    """
    parts = [
        f'<span class="updated" title="snapshot {html.escape(version)}">'
        f"Updated <b>{updated_at:%H:%M:%S}</b> UTC</span>",
        f'<span>· data as of <b class="as-of">{html.escape(as_of)}</b></span>',
    ]
    if newly_high_risk is not None:
        parts.append(newly_high_risk_badge(newly_high_risk))
    if problem:
        parts.append(f'<span class="problem" role="alert">⚠ {html.escape(problem)}</span>')
    return f'<div class="live" data-version="{html.escape(version)}">{"".join(parts)}</div>'
