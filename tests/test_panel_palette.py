"""The dashboard's colours: good and bad news stay apart for readers with a colour-vision
deficiency, and no colour on any page is a green that a red could be confused with."""

from __future__ import annotations

import colorsys
import math
import re
from pathlib import Path

import pytest

from panel_app import ui

PANEL_APP = Path(ui.__file__).parent

#: Machado, Oliveira & Fernandes (2009), full severity, applied to linear RGB.
SIMULATIONS = {
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216),
                   (-0.003882, -0.048116, 1.051998)),
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413),
                     (-0.011820, 0.042940, 0.968881)),
    "tritanopia": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602),
                   (0.004733, 0.691367, 0.303900)),
}  # fmt: skip


def _linear(hex_colour: str) -> tuple[float, ...]:
    channels = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return tuple(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)


def _lab(rgb: tuple[float, ...]) -> tuple[float, float, float]:
    r, g, b = rgb
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def seen_apart(a: str, b: str, deficiency: str) -> float:
    """CIE76 colour difference of two colours as a reader with ``deficiency`` sees them."""
    matrix = SIMULATIONS[deficiency]

    def simulate(colour: str) -> tuple[float, ...]:
        rgb = _linear(colour)
        return tuple(min(max(sum(m * c for m, c in zip(row, rgb, strict=True)), 0), 1)
                     for row in matrix)  # fmt: skip

    return math.dist(_lab(simulate(a)), _lab(simulate(b)))


@pytest.mark.parametrize("deficiency", sorted(SIMULATIONS))
def test_good_and_bad_news_stay_apart_for_every_common_deficiency(deficiency):
    assert seen_apart(ui.GOOD, ui.BAD, deficiency) > 60
    # the same measure tells the red/green pair the dashboard used to have as nearly alike
    if deficiency != "tritanopia":
        assert seen_apart("#dc2626", "#16a34a", deficiency) < 30


def test_no_page_paints_with_green():
    colours = {
        (path.relative_to(PANEL_APP).as_posix(), colour)
        for path in PANEL_APP.rglob("*.py")
        for colour in re.findall(r"#[0-9a-fA-F]{6}\b", path.read_text())
    }
    assert len(colours) > 20  # the scan sees the pages' colours
    greens = []
    for where, colour in colours:
        hue, _, saturation = colorsys.rgb_to_hls(
            *(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        )
        if saturation > 0.3 and 75 <= hue * 360 <= 165:
            greens.append((where, colour))
    assert not greens


def test_notices_for_good_news_are_blue_not_bootstraps_green():
    notice = ui.notice("Every requested offset range is landed.", kind="success")
    assert ui.NOTICE_CSS in notice.stylesheets
    assert ".alert-success" in ui.NOTICE_CSS and ui.SKY in ui.NOTICE_CSS


def test_the_queue_s_buttons_are_not_bootstraps_green():
    from panel_app.views.action_queue import ExceptionQueue

    queue = ExceptionQueue(store=None)  # the form alone: its buttons need no data
    kinds = {button.name: button.button_type for button in queue.buttons}
    assert "Resolve" in kinds
    assert "success" not in kinds.values(), kinds
