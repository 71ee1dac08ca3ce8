"""``mode_capped`` in the risk log: a closed enum (``true``/``false``) after ``agreement``.

Both validators (the pydantic model and the standard-library one) and the regex fast path must
agree: the writer's lines with either value are records, counted exactly like the same line
without the field; any other token makes the line foreign, never a third value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from partial_trust.apps.analysis.figures import from_tally
from partial_trust.apps.analysis.reader import tally_files
from partial_trust.apps.analysis.records import LINE, parse, validate_plain
from partial_trust.apps.analysis.records_model import validate_model
from partial_trust.apps.analysis.tally import Window
from partial_trust.middleware.risk_record import line as risk_line
from partial_trust.mode import Mode
from partial_trust.outcome import Outcome, Reason, Status


def written(capped: bool, mode: Mode = Mode.SHADOW) -> bytes:
    o = Outcome(
        "share_shopping_list", Status.ACCEPTED_LLM, Reason.ACCEPTED, True, 0.05, "p", "k1",
        40.0, 2.0, True, True, 0.9, 2, 2, mode=mode, agreement=True, mode_capped=capped,
    )  # fmt: skip
    return risk_line(o).rstrip(b"\n")


@pytest.mark.parametrize("capped", [True, False])
def test_the_writers_line_is_a_record_on_every_path(capped: bool) -> None:
    data = written(capped)
    assert json.loads(data)["mode_capped"] is capped
    assert data.endswith(b',"mode_capped":' + (b"true}" if capped else b"false}"))
    assert LINE.fullmatch(data) is not None
    assert validate_plain(data) is not None and validate_model(data) is not None
    assert validate_plain(data) == validate_model(data)
    without = data.replace(b',"mode_capped":true', b"").replace(b',"mode_capped":false', b"")
    assert parse(data) == parse(without)  # the field explains, it does not change a count


@pytest.mark.parametrize("token", ["null", "1", "0", '"true"', '"yes"', "[]", "{}", "truee"])
def test_any_other_value_makes_the_line_foreign(token: str) -> None:
    data = written(True).replace(b'"mode_capped":true', b'"mode_capped":' + token.encode())
    assert LINE.fullmatch(data) is None
    assert validate_plain(data) is None and validate_model(data) is None
    assert parse(data) is None


def test_a_log_of_capped_lines_counts_like_any_other(tmp_path: Path) -> None:
    log = tmp_path / "risk.jsonl"
    lines = [written(True) for _ in range(3)] + [written(False, Mode.CANARY) for _ in range(2)]
    log.write_bytes(b"".join(x + b"\n" for x in lines))
    tally = tally_files([log], Window(), jobs=1)
    assert tally.foreign == 0 and tally.lines == 5
    assert from_tally(tally).sampled == 5
