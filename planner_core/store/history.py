"""Read side helpers: duration and time parsing, and the ``history`` table / JSON / CSV output."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from planner_core.store.cycle_row import HISTORY_COLUMNS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` (a bare number is seconds)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"bad duration {text!r}: use a number with a unit, like 90d, 12h, 30m or 45s")
    unit = (match.group(2) or "s").lower()
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[unit])


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A duration back from now (``1d``) or an ISO-8601 time (UTC when no zone is given)."""
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad --since {text!r}: give a duration (1d, 6h) or a time (2025-01-31T14:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)




def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json_lines(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True) + "\n" for row in rows)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] = HISTORY_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if _plain(row.get(k)) is None else _plain(row.get(k))) for k in columns})
    return out.getvalue()


def _cell(value: Any, width: int | None = None) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    elif isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = str(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _pair(a: Any, b: Any) -> str:
    return f"{_cell(a)}/{_cell(b)}"


def to_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per cycle: when, what was observed and predicted, what was decided and applied."""
    header = (
        "run",
        "deployment",
        "started (UTC)",
        "trigger",
        "status",
        "req obs→pred",
        "isl/osl obs",
        "ttft/itl ms",
        "P/D now",
        "P/D decided",
        "P/D applied",
        "outcome",
        "reason",
    )
    table = [header]
    for r in rows:
        outcome = r.get("action_outcome") or ("dry-run" if r.get("dry_run") else r.get("action") or "-")
        table.append(
            (
                _cell(r.get("run_id")),
                _cell(r.get("deployment"), 24),
                _cell(r.get("started_at")),
                _cell(r.get("trigger")),
                _cell(r.get("status")),
                f"{_cell(r.get('observed_num_req'))}→{_cell(r.get('predicted_num_req'))}",
                _pair(r.get("observed_isl"), r.get("observed_osl")),
                _pair(r.get("observed_ttft_ms"), r.get("observed_itl_ms")),
                _pair(r.get("current_prefill"), r.get("current_decode")),
                _pair(r.get("decided_prefill"), r.get("decided_decode")),
                _pair(r.get("applied_prefill"), r.get("applied_decode")),
                _cell(outcome),
                _cell(r.get("error") or r.get("reason"), 60),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    return "\n".join(lines) + "\n"
