"""The one report every benchmark adds its figures to: printed as they come, then markdown and JSON.

Each benchmark measures our path next to the bare tool it is built on, in the same run on the same
broker, so ratios stay meaningful on any machine.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Report:
    """Figures collected by the benchmarks."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, section: str, **figures: Any) -> None:
        """Record figures under ``section`` and print them as they come."""
        self.sections.setdefault(section, {}).update(figures)
        for name, value in figures.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else value
            print(f"  {section} | {name}: {shown}", flush=True)

    def markdown(self) -> str:
        """The report as markdown tables, one per section."""
        lines = [
            "# SCPro benchmark report",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({platform.processor() or platform.machine()}, Python {platform.python_version()})",
            "",
        ]
        for section, figures in self.sections.items():
            lines += [f"## {section}", "", "| figure | value |", "|---|---|"]
            for name, value in figures.items():
                shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
                lines.append(f"| {name} | {shown} |")
            lines.append("")
        return "\n".join(lines)
