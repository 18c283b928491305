"""The status page of ``specman serve`` at ``/_specman/``: what the service holds and how its syncs went.

The page shows what ``/_specman/status`` answers as JSON (source, every synced tag with digest, size, file count
and the time it was published here, the last sync's result and error) plus a chart of the recent syncs, drawn on
the server as inline SVG from ``SyncStatus.history`` (no script at all on this page).  Values are escaped by the
template (``specman.webui``) and by ``sync_chart`` for the SVG's own text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from markupsafe import Markup, escape

from specman.store import StoreReader
from specman.webui.templates import human_bytes, human_duration, human_time

__all__ = ["status_context", "sync_chart"]

_W: Final = 520  # one panel
_H: Final = 150
_PAD_L: Final = 56
_PAD_R: Final = 12
_PAD_T: Final = 26
_PAD_B: Final = 24
_MIN_SLOTS: Final = 15


def _panel(
    x0: int,
    title: str,
    values: Sequence[float | None],
    oks: Sequence[bool],
    label: Callable[[float], str],
    tips: list[str],
) -> str:
    """One bar chart: ``values`` oldest first (None = unknown), red bars for failed syncs."""
    known = [v for v in values if v is not None]
    top = max(known) if known and max(known) > 0 else 1.0
    inner_w, inner_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    slots = max(len(values), _MIN_SLOTS)  # a few syncs are drawn at the right ("latest"), not spread out
    offset = slots - len(values)
    slot = inner_w / slots
    bar = max(min(slot * 0.7, 24.0), 2.0)
    base = _PAD_T + inner_h
    parts = [
        f'<g transform="translate({x0},0)">',
        f'<text x="{_PAD_L}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{_PAD_L}" y1="{base}" x2="{_W - _PAD_R}" y2="{base}" class="axis"/>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_W - _PAD_R}" y2="{_PAD_T}" class="grid"/>',
        f'<text x="{_PAD_L - 6}" y="{_PAD_T + 4}" class="tick" text-anchor="end">{escape(label(top))}</text>',
        f'<text x="{_PAD_L - 6}" y="{base + 4}" class="tick" text-anchor="end">0</text>',
        f'<text x="{_PAD_L}" y="{_H - 6}" class="tick">older</text>',
        f'<text x="{_W - _PAD_R}" y="{_H - 6}" class="tick" text-anchor="end">latest</text>',
    ]
    for i, (value, ok) in enumerate(zip(values, oks, strict=True)):
        if value is None:
            continue
        h = max(value / top * inner_h, 1.0)
        x = _PAD_L + (offset + i) * slot + (slot - bar) / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="2" '
            f'class="{"bar" if ok else "bar failed"}"><title>{escape(tips[i])}: {escape(label(value))}</title></rect>'
        )
    parts.append("</g>")
    return "".join(parts)


def sync_chart(history: Sequence[dict[str, Any]]) -> Markup | None:
    """An SVG of the recent syncs' durations and sizes (None without history)."""
    runs = [h for h in history if isinstance(h, dict)]
    if not runs:
        return None
    oks = [bool(h.get("ok")) for h in runs]
    tips = [f"{human_time(h.get('finished'))}{'' if h.get('ok') else ' (failed)'}" for h in runs]

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    durations = [number(h.get("duration")) for h in runs]
    sizes = [number(h.get("served")) for h in runs]
    width = 2 * _W
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {_H}" width="{width}" height="{_H}" role="img" '
        f'aria-labelledby="chart-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<desc id="chart-desc">Duration and size of synced tags for the last {len(runs)} syncs; '
        f"failed syncs in red.</desc>"
        + _panel(0, "Sync duration", durations, oks, human_duration, tips)
        + _panel(_W, "Size of synced tags", sizes, oks, human_bytes, tips)
        + "</svg>"
    )
    return Markup(svg)  # noqa: S704 - every text inside went through escape()


def status_context(store: StoreReader, source: str | None, sync: dict[str, Any] | None) -> dict[str, Any]:
    """What ``status.html`` shows (blocking: reads the generation and version records)."""
    generation = store.current()
    tags = []
    if generation is not None:
        for tag, state in generation.tags.items():
            version = store.version(tag, state.digest)
            tags.append(
                {
                    "tag": tag,
                    "digest": state.digest,
                    "bytes": state.bytes,
                    "files": state.files,
                    "created": version.created if version is not None else None,
                }
            )
    history = sync.get("history") if sync else None
    return {
        "source": source,
        "generation": generation.number if generation is not None else None,
        "created": generation.created if generation is not None else None,
        "files": generation.files if generation is not None else 0,
        "tags": tags,
        "sync": sync,
        "chart": sync_chart(history) if isinstance(history, list) else None,
    }
