"""Bar charts drawn by the server: the geometry of SVG bars (no chart library, no inline style).

Widths are in the units of the bars' `viewBox` (0..SCALE), so the template writes them as SVG
presentation attributes, which a `style-src 'self'` policy allows.
"""

from __future__ import annotations

from dataclasses import dataclass

SCALE = 1000


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    width: int  # 0..SCALE, of the largest value
    part: int | None = None  # a share of `value` drawn over it (e.g. the eligible rows)
    part_width: int = 0
    href: str | None = None
    note: str | None = None


def width_of(value: int, largest: int) -> int:
    """A value's bar width; any value above zero stays visible."""
    if value <= 0 or largest <= 0:
        return 0
    return max(4, round(SCALE * min(value, largest) / largest))


def bars(items: list[dict], *, limit: int | None = None) -> list[Bar]:
    """`items` of {"label", "value", optional "part", "href", "note"}, biggest first, as bars."""
    ordered = sorted(items, key=lambda item: item["value"], reverse=True)
    if limit is not None:
        ordered = ordered[:limit]
    largest = max((item["value"] for item in ordered), default=0)
    return [
        Bar(
            label=item["label"],
            value=item["value"],
            width=width_of(item["value"], largest),
            part=item.get("part"),
            part_width=width_of(item.get("part") or 0, largest),
            href=item.get("href"),
            note=item.get("note"),
        )
        for item in ordered
    ]


@dataclass(frozen=True)
class Segment:
    name: str
    value: int
    x: int
    width: int


def segments(total: int, parts: list[tuple[str, int]]) -> list[Segment]:
    """One stacked bar of `total` (a job's success, error, skipped): consecutive segments whose
    widths add up to at most SCALE; the rest of the bar is what remains."""
    out, x = [], 0
    for name, value in parts:
        width = round(SCALE * value / total) if total > 0 else 0
        width = min(width, SCALE - x)
        out.append(Segment(name, value, x, width))
        x += width
    return out
