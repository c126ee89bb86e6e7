"""File writers for exports: each takes rows one at a time and never holds more than one in memory.

Text bound for a spreadsheet (CSV, XLSX) goes through console.spreadsheet.safe_cell: a failed log-in audits the
name that was typed, so "=HYPERLINK(...)" must reach the officer's Excel as text, not as a live formula.

CSV and JSON lines stream to the file; openpyxl's write-only workbook streams rows to a temporary file and zips at
the end; ReportLab's canvas keeps every page until `save()`, so a PDF is capped (COMPLIANCE_PDF_MAX_ROWS) and larger
exports are refused with a reason that names CSV/XLSX instead.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from console.spreadsheet import safe_cell

# One sheet holds 1,048,576 rows; leave room for the header and start a new sheet well before.
XLSX_ROWS_PER_SHEET = 1_000_000


@dataclass(frozen=True)
class Cover:
    """What the PDF's first page (and the XLSX's cover sheet) says about the export."""

    title: str
    period_start: datetime
    period_end: datetime
    filters: list[tuple[str, str]]
    exported_by: str
    exported_at: datetime
    row_count: int
    first_hash: str
    last_hash: str

    def lines(self) -> list[tuple[str, str]]:
        return [
            ("Report", self.title),
            ("Period (UTC)", f"{_text(self.period_start)} to {_text(self.period_end)}"),
            ("Filters", "; ".join(f"{label}: {value}" for label, value in self.filters) or "none"),
            ("Exported by", self.exported_by),
            ("Exported at (UTC)", _text(self.exported_at)),
            ("Rows", f"{self.row_count:,}"),
            ("Chain hash, first row", self.first_hash or "n/a"),
            ("Chain hash, last row", self.last_hash or "n/a"),
        ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")  # numeric(30,12) comes back as 0.002000000000
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Writer(Protocol):
    def write(self, row: Sequence[Any]) -> None: ...

    def close(self) -> None: ...


class CsvWriter:
    def __init__(self, path: Path, header: Sequence[str], cover: Cover) -> None:
        self._file = open(path, "w", newline="", encoding="utf-8")  # closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow(header)

    def write(self, row: Sequence[Any]) -> None:
        # safe_cell before _text: a Decimal stays a number ("-0.5" must not become "'-0.5"); only text is quoted.
        self._csv.writerow([_text(safe_cell(value)) for value in row])

    def close(self) -> None:
        self._file.close()


class JsonLinesWriter:
    """One JSON object per line (CAT submissions are JSON records)."""

    def __init__(self, path: Path, header: Sequence[str], cover: Cover) -> None:
        self._file = open(path, "w", encoding="utf-8")  # closed in close()
        self._header = tuple(header)

    def write(self, row: Sequence[Any]) -> None:
        record = {key: value for key, value in zip(self._header, row, strict=True) if value not in (None, "")}
        self._file.write(json.dumps(record, default=_text, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


class XlsxWriter:
    def __init__(self, path: Path, header: Sequence[str], cover: Cover) -> None:
        from openpyxl import Workbook

        self._path = path
        self._header = list(header)
        self._book = Workbook(write_only=True)
        summary = self._book.create_sheet("Cover")
        for label, value in cover.lines():
            summary.append([label, safe_cell(value)])  # the filters are typed by the officer
        self._sheet = None
        self._rows_in_sheet = XLSX_ROWS_PER_SHEET
        self._sheets = 0

    def write(self, row: Sequence[Any]) -> None:
        if self._rows_in_sheet >= XLSX_ROWS_PER_SHEET:
            self._sheets += 1
            self._sheet = self._book.create_sheet(f"Rows {self._sheets}")
            self._sheet.append(self._header)
            self._rows_in_sheet = 0
        self._sheet.append([_xlsx_cell(value) for value in row])
        self._rows_in_sheet += 1

    def close(self) -> None:
        if self._sheet is None:
            self._book.create_sheet("Rows 1").append(self._header)
        self._book.save(self._path)


def _xlsx_cell(value: Any) -> Any:
    # Excel has no time zones: times go in as naive UTC (the header says so on the cover).
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    # openpyxl's write-only sheet stores any str starting with "=" as a formula; after safe_cell none does.
    return safe_cell(value)


class PdfWriter:
    """A cover page, then the rows as a small-type table, landscape A4, the header repeated on every page."""

    FONT = "Helvetica"
    SIZE = 6.5
    LEADING = 9

    def __init__(self, path: Path, header: Sequence[str], cover: Cover) -> None:
        from reportlab.lib.pagesizes import A4, landscape
        from reportlab.pdfgen.canvas import Canvas

        self._canvas = Canvas(str(path), pagesize=landscape(A4))
        self._canvas.setTitle(cover.title)
        self._width, self._height = landscape(A4)
        self._header = list(header)
        self._widths = self._column_widths(len(header))
        self._page = 0
        self._y = 0.0
        self._draw_cover(cover)
        self._new_page()

    def _column_widths(self, count: int) -> list[float]:
        usable = self._width - 60
        return [usable / count] * count

    def _draw_cover(self, cover: Cover) -> None:
        c = self._canvas
        c.setFont("Helvetica-Bold", 18)
        c.drawString(40, self._height - 70, cover.title)
        c.setFont(self.FONT, 11)
        y = self._height - 110
        for label, value in cover.lines():
            c.setFont("Helvetica-Bold", 11)
            c.drawString(40, y, f"{label}:")
            c.setFont("Courier" if "hash" in label.lower() else self.FONT, 11)
            c.drawString(200, y, value)
            y -= 20
        c.showPage()

    def _new_page(self) -> None:
        if self._page:
            self._canvas.showPage()
        self._page += 1
        c = self._canvas
        c.setFont(self.FONT, self.SIZE)
        c.drawRightString(self._width - 30, 20, f"page {self._page + 1}")
        self._y = self._height - 30
        self._line(self._header, bold=True)

    def _line(self, cells: Iterable[str], *, bold: bool = False) -> None:
        c = self._canvas
        c.setFont("Helvetica-Bold" if bold else self.FONT, self.SIZE)
        x = 30.0
        for text, width in zip(cells, self._widths, strict=False):
            # Clip each cell to its column: a long reason must not run over its neighbours.
            limit = max(1, int(width / (self.SIZE * 0.5)))
            c.drawString(x, self._y, text if len(text) <= limit else text[: limit - 1] + "…")
            x += width
        self._y -= self.LEADING

    def write(self, row: Sequence[Any]) -> None:
        if self._y < 35:
            self._new_page()
        self._line([_text(value) for value in row])

    def close(self) -> None:
        self._canvas.save()


WRITERS: dict[str, type] = {"csv": CsvWriter, "xlsx": XlsxWriter, "pdf": PdfWriter, "json": JsonLinesWriter}
