"""The analyzer's figures equal hand-computed values, whatever path the bytes take.

Hand-computed answers for the fixtures live in ``partial_trust.apps.analysis.selftest`` (shared with
``--self-test``); here they are checked again, plus one record, all errors, mixed files,
byte-range splitting, and an independent naive implementation on random records: the regex
fast path, the JSON slow path and split ranges must all agree with it exactly.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from partial_trust.apps.analysis import selftest
from partial_trust.apps.analysis.figures import Figures, from_tally, percentile
from partial_trust.apps.analysis.reader import count_task, plan, tally_files
from partial_trust.apps.analysis.tally import LINE, Tally, Window, parse_time
from partial_trust.middleware.risk_log import record
from partial_trust.outcome import STATUS_REASONS, Outcome

ROWS = selftest.ROWS


def figures(*paths: Path, window: Window | None = None) -> Figures:
    return from_tally(tally_files(list(paths), window or Window(), jobs=1))


def write(path: Path, lines: list[str], tail: str = "") -> Path:
    path.write_text("".join(line + "\n" for line in lines) + tail, encoding="utf-8")
    return path


def check(fig: Figures, expected: dict[str, Any]) -> None:
    got = fig.to_json()
    got.update(got.pop("input"))
    for name, want in expected.items():
        if isinstance(want, float):
            assert math.isclose(got[name], want, abs_tol=1e-6), name
        else:
            assert got[name] == want, name


def test_every_status_and_reason_hand_computed(tmp_path: Path) -> None:
    fig = figures(write(tmp_path / "a.jsonl", [selftest.canonical(r) for r in ROWS]))
    check(fig, selftest.FULL)
    assert fig.reason_counts["accepted"] == 3
    assert all(fig.reason_counts[r.value] == 1 for s, r in STATUS_REASONS if r.value != "accepted")
    assert fig.intent_match == {"true": 9, "false": 1, "null": 14}
    assert fig.entity_key_match == {"true": 5, "false": 5, "null": 14}
    assert [(h.hour[-2:], h.sampled, h.accepted_llm, h.error) for h in fig.hours] == [
        ("09", 11, 3, 0),
        ("10", 6, 0, 6),
    ]
    rates = fig.to_json()["rates"]
    assert rates["error_rate"]["numerator"] == 6 and rates["error_rate"]["denominator"] == 17


def test_empty_input_gives_null_rates_never_zero(tmp_path: Path) -> None:
    fig = figures(write(tmp_path / "e.jsonl", []))
    check(fig, selftest.EMPTY)
    assert fig.to_json()["error_rate"] is None


def test_one_record(tmp_path: Path) -> None:
    row = (selftest.H9 % 0, "accepted_llm", "accepted", 123.45, True, False)
    fig = figures(write(tmp_path / "one.jsonl", [selftest.canonical(row)]))
    check(
        fig,
        {"records": 1, "sampled": 1, "error_rate": 0.0, "acceptance_rate": 1.0,
         "intent_mismatch_rate": 0.0, "entity_key_mismatch_rate": 1.0, "latency_p95": 123.45},
    )  # fmt: skip


def test_all_errors(tmp_path: Path) -> None:
    rows = [(selftest.H9 % i, "error", "llm_timeout", 200.0 + i, None, None) for i in range(20)]
    fig = figures(write(tmp_path / "err.jsonl", [selftest.canonical(r) for r in rows]))
    # latencies 200..219, h = 19 * 0.95 = 18.05 -> 218 + 0.05 * 1 = 218.05
    check(
        fig,
        {"records": 20, "sampled": 20, "error_rate": 1.0, "acceptance_rate": 0.0,
         "intent_mismatch_rate": None, "entity_key_mismatch_rate": None, "latency_p95": 218.05},
    )  # fmt: skip


def test_mixed_files_gzip_torn_and_foreign_lines(tmp_path: Path) -> None:
    lines = selftest.messy_lines()
    write(tmp_path / "risk.jsonl", lines[:10])
    with gzip.open(tmp_path / "risk.jsonl.1.gz", "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines[10:20]))
    write(tmp_path / "worker-2.jsonl", lines[20:], tail=selftest.TORN)
    fig = figures(*sorted(tmp_path.glob("*")))
    check(fig, {**selftest.FULL, "foreign_lines": 2, "torn_lines": 1})


def test_final_line_without_newline_is_a_record_not_torn(tmp_path: Path) -> None:
    lines = [selftest.canonical(r) for r in ROWS]
    path = tmp_path / "nonl.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    check(figures(path), {**selftest.FULL, "torn_lines": 0})


def test_since_until_window(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [selftest.canonical(r) for r in ROWS])
    since = parse_time("2026-11-23T10:00:00Z")
    check(figures(path, window=Window(since=since)), selftest.SINCE_10)
    until = Window(until=parse_time("2026-11-23T09:05:00Z"))
    # 09:00..09:04: accepted x4 (100 120 140 160) + intent_mismatch (180)
    check(figures(path, window=until), {"records": 5, "sampled": 5, "latency_p95": 176.0})


def test_percentile_linear_interpolation_between_closest_ranks() -> None:
    assert percentile({}, 0.95) is None
    assert percentile({7.0: 1}, 0.95) == 7.0
    assert percentile({1.0: 1, 2.0: 1}, 0.95) == 1.95
    # 1..100: h = 99 * 0.95 = 94.05 -> 95 + 0.05 = 95.05
    assert math.isclose(percentile({float(i): 1 for i in range(1, 101)}, 0.95) or 0, 95.05)
    assert math.isclose(percentile({5.0: 3, 9.0: 1}, 0.95) or 0, 8.4)  # 5 5 5 9, h = 2.85


def test_the_writers_lines_take_the_fast_path() -> None:
    for status, reason in STATUS_REASONS:
        o = Outcome("add_shopping_item", status, reason, True, 0.05, "p", "k" * 32, 12.5, 3.0)
        line = json.dumps(record(o), separators=(",", ":"), ensure_ascii=False)
        assert LINE.fullmatch(line.encode()), line


def test_byte_ranges_count_every_line_exactly_once(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", selftest.messy_lines() * 3, tail=selftest.TORN)
    (whole_task,) = plan([path], task_size=10**9)
    whole = count_task(whole_task, Window())
    assert (sum(whole.records.values()), whole.foreign, whole.torn, whole.lines) == (
        3 * 24,
        3 * 2,
        1,
        3 * 26 + 1,
    )
    for size in (53, 400, 1000, 4096):  # 53: most ranges start and end inside a line
        parts = Tally()
        for task in plan([path], task_size=size):
            parts.merge(count_task(task, Window()))
        assert (parts.records, parts.latencies) == (whole.records, whole.latencies), size
        assert (parts.foreign, parts.torn, parts.lines) == (whole.foreign, 1, whole.lines), size


def _naive(lines: list[str]) -> dict[str, Any]:
    """An independent, obviously-correct implementation: json.loads per line."""
    recs = [json.loads(x) for x in lines]
    sampled = [r for r in recs if r["status"] != "skipped"]
    lat = sorted(r["latency_ms"] for r in sampled if r["latency_ms"] is not None)
    p95 = None
    if lat:
        h = (len(lat) - 1) * 0.95
        lo = math.floor(h)
        p95 = lat[lo] + (h - lo) * (lat[min(lo + 1, len(lat) - 1)] - lat[lo])
    im = [r["intent_match"] for r in recs if r["intent_match"] is not None]
    em = [r["entity_key_match"] for r in recs if r["entity_key_match"] is not None]
    n = len(sampled)
    return {
        "records": len(recs),
        "sampled": n,
        "error_rate": sum(r["status"] == "error" for r in recs) / n if n else None,
        "acceptance_rate": sum(r["status"] == "accepted_llm" for r in recs) / n if n else None,
        "intent_mismatch_rate": im.count(False) / len(im) if im else None,
        "entity_key_mismatch_rate": em.count(False) / len(em) if em else None,
        "latency_p95": p95,
    }


_row = st.tuples(
    st.tuples(st.sampled_from([selftest.H9, selftest.H10]), st.integers(0, 59)).map(
        lambda hm: hm[0] % hm[1]
    ),
    st.sampled_from(STATUS_REASONS).map(lambda sr: (sr[0].value, sr[1].value)),
    st.one_of(st.none(), st.floats(0, 5000).map(lambda x: round(x, 2))),
    st.sampled_from([None, True, False]),
    st.sampled_from([None, True, False]),
)


_SINCE = [None, "2026-11-23T09:30:00Z", "2026-11-23T10:00:00Z", "2026-11-23T10:59:00Z"]


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(_row, max_size=40), spaced=st.booleans(), since=st.sampled_from(_SINCE))
def test_fast_and_slow_paths_agree_with_a_naive_implementation(
    tmp_path_factory: Any, rows: list[Any], spaced: bool, since: str | None
) -> None:
    lines = [selftest.canonical((t, s, r, lat, i, e)) for t, (s, r), lat, i, e in rows]
    if spaced:  # another writer's spacing: every chunk goes through the JSON slow path
        lines = [json.dumps(json.loads(x)) for x in lines]
    path = write(tmp_path_factory.mktemp("h") / "h.jsonl", lines)
    inside = [x for x in lines if since is None or json.loads(x)["timestamp"] >= since[:-1]]
    want = _naive(inside)
    window = Window(since=parse_time(since)) if since else None
    got = figures(path, window=window).to_json()
    assert got["input"]["outside_window"] == len(lines) - len(inside)
    for name, value in want.items():
        if isinstance(value, float):
            assert math.isclose(got[name], value, abs_tol=1e-6), name
        else:
            assert got[name] == value, name


def test_window_judges_offset_timestamps_in_utc(tmp_path: Path) -> None:
    # 11:MM+02:00 is 09:MM UTC: the hour prefix alone would put these outside the window.
    rows = [(f"2026-11-23T11:{m:02d}:00.000+02:00", "error", "llm_timeout", 10.0, None, None)
            for m in range(10)]  # fmt: skip
    path = write(tmp_path / "tz.jsonl", [selftest.canonical(r) for r in rows])
    nine = Window(parse_time("2026-11-23T09:00Z"), parse_time("2026-11-23T10:00Z"))
    check(figures(path, window=nine), {"records": 10, "outside_window": 0})
    eleven = Window(parse_time("2026-11-23T11:00Z"))
    check(figures(path, window=eleven), {"records": 0, "outside_window": 10})
    assert [h.hour for h in figures(path).hours] == ["2026-11-23T09"]


def test_a_chunk_wholly_outside_the_window_is_counted_not_parsed(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [selftest.canonical(r) for r in ROWS[:11]])  # all 09:MM
    since = Window(parse_time("2026-11-23T10:00Z"))
    check(figures(path, window=since), {"records": 0, "outside_window": 11, "lines": 11})
