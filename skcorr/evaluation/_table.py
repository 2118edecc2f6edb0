"""The one result type of every protocol: rows of settings and scores, CSV and Markdown."""

from __future__ import annotations

import contextlib
import contextvars
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from .._io import write_text

__all__ = ["ResultTable"]

# The folder that tables filled row by row are written to after every row (rows_to).
_ROWS_FOLDER: contextvars.ContextVar = contextvars.ContextVar("skcorr_rows_folder",
                                                              default=None)


def _is_fraction(column: str) -> bool:
    """Columns of fractions in [0, 1] (PCK, accuracies): printed in percent."""
    return "pck" in column.lower() or "accuracy" in column.lower()


class ResultTable(list):
    """The result of an evaluation protocol: a list of dict rows, with a title and notes.

    Every row has the same keys in the same order: settings first, each in its own
    column, then scores. Columns whose name contains ``"PCK"`` or ``"accuracy"`` hold
    fractions in ``[0, 1]``: :meth:`to_csv` writes them as they are, :meth:`to_markdown`
    in percent. Timings and other remarks go in ``notes``, printed under the table.

    Parameters
    ----------
    rows : iterable of dict, default=()
        The rows.
    title : str, default=""
        One line saying what was measured and how.
    notes : sequence of str, default=()
        Footnotes, e.g. ``"42.0 s"``.
    name : str, default=""
        A short name for files, e.g. ``"cub-detect"`` (the command line writes
        ``<name>.csv`` and ``<name>.md``).

    Examples
    --------
    >>> from skcorr.evaluation import ResultTable
    >>> table = ResultTable([{"class": "duck", "pairs": 2, "PCK@0.1": 0.625},
    ...                      {"class": "mean", "pairs": 2, "PCK@0.1": 0.625}],
    ...                     title="Two pairs", notes=["0.1 s"])
    >>> print(table.to_csv(), end="")
    class,pairs,PCK@0.1
    duck,2,0.625
    mean,2,0.625
    >>> print(table)
    Two pairs
    <BLANKLINE>
    | class | pairs | PCK@0.1 (%) |
    |---|---|---:|
    | duck | 2 | 62.5 |
    | mean | 2 | 62.5 |
    <BLANKLINE>
    0.1 s
    """

    def __init__(self, rows=(), *, title: str = "", notes=(), name: str = ""):
        super().__init__(rows)
        self.title = title
        self.notes = list(notes)
        self.name = name

    def columns(self) -> list[str]:
        """The column names, in order.

        Returns
        -------
        columns : list of str
            The keys of the first row, or an empty list for an empty table.
        """
        return list(self[0]) if self else []

    def to_markdown(self, digits: int = 1) -> str:
        """The rows as a Markdown table, fractions in percent.

        Parameters
        ----------
        digits : int, default=1
            Decimals of the percentages; other floats get four significant digits.

        Returns
        -------
        text : str
            A Markdown table without a trailing newline; fraction columns are headed
            ``"<name> (%)"`` and aligned right. ``"(empty)"`` for an empty table.
        """
        columns = self.columns()
        if not columns:
            return "(empty)"

        def cell(column, value):
            if value is None:
                return "-"
            if isinstance(value, float) and _is_fraction(column):
                return f"{100 * value:.{digits}f}"
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        header = [f"{c} (%)" if _is_fraction(c) else c for c in columns]
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if _is_fraction(c) else "---" for c in columns) + "|"]
        lines += ["| " + " | ".join(cell(c, row[c]) for c in columns) + " |" for row in self]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The rows as CSV text, fractions as they are (``None`` as an empty cell).

        Returns
        -------
        text : str
            A header line and one line per row, each ending with ``"\\n"``.
        """
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self)
        return buffer.getvalue()

    def __str__(self) -> str:
        """The title, the Markdown table and the notes, separated by blank lines."""
        parts = [self.title, self.to_markdown(), "\n".join(self.notes)]
        return "\n\n".join(part for part in parts if part)

    @contextlib.contextmanager
    def keep_on_interrupt(self) -> Iterator[ResultTable]:
        """Hand the rows finished so far to whoever catches an exception leaving the block.

        A protocol that fills the table row by row runs its loop inside this block:
        an exception that stops it (Ctrl-C, SIGTERM, an error) leaves with an attribute
        ``partial_table``, this table, when it holds rows. ``skcorr evaluate`` prints it
        and writes it to ``--output`` when it is interrupted, so that finished rows are
        not lost.

        Yields
        ------
        table : ResultTable
            This table.

        Examples
        --------
        >>> from skcorr.evaluation import ResultTable
        >>> table = ResultTable(name="rows")
        >>> interrupt = KeyboardInterrupt()
        >>> try:
        ...     with table.keep_on_interrupt():
        ...         table.append({"row": 1})
        ...         raise interrupt
        ... except KeyboardInterrupt:
        ...     print(interrupt.partial_table.to_csv(), end="")
        row
        1
        """
        folder = _ROWS_FOLDER.get()
        self._on_row = None if folder is None else (lambda: self._write_to(folder))
        try:
            yield self
        except BaseException as exc:
            if self and getattr(exc, "partial_table", None) is None:
                exc.partial_table = self
            raise
        finally:
            self._on_row = None

    def append(self, row) -> None:
        """Add a row; inside :meth:`keep_on_interrupt` under :meth:`rows_to`, write the table.

        Parameters
        ----------
        row : dict
            Column name -> value.
        """
        super().append(row)
        if getattr(self, "_on_row", None) is not None:
            self._on_row()

    @staticmethod
    @contextlib.contextmanager
    def rows_to(folder) -> Iterator[Path]:
        """Within the block, write each table a protocol fills row by row, after every row.

        A protocol that fills its table inside :meth:`keep_on_interrupt` (one row per
        setting, minutes each) then leaves ``folder/<name>.csv`` and ``.md`` holding the
        rows finished so far, each write whole: a run that is killed, even without a
        chance to clean up, keeps them. ``skcorr evaluate --output`` runs its protocol in
        this block.

        Parameters
        ----------
        folder : str or os.PathLike
            An existing folder.

        Yields
        ------
        folder : Path
            The folder.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> from skcorr.evaluation import ResultTable
        >>> folder = tempfile.mkdtemp()
        >>> with ResultTable.rows_to(folder):
        ...     table = ResultTable(name="rows")
        ...     with table.keep_on_interrupt():
        ...         table.append({"row": 1})
        ...         print((Path(folder) / "rows.csv").read_text(), end="")
        row
        1
        """
        token = _ROWS_FOLDER.set(Path(folder))
        try:
            yield Path(folder)
        finally:
            _ROWS_FOLDER.reset(token)

    def _write_to(self, folder: Path) -> None:
        for suffix in (".csv", ".md"):
            self.write(folder / f"{self.name or 'table'}{suffix}")


    def write(self, path) -> Path:
        """Write the table to ``path``, whole or not at all.

        Parameters
        ----------
        path : str or os.PathLike
            A ``.csv`` file gets :meth:`to_csv`; a ``.md`` file gets what ``print``
            shows (title, Markdown table, notes). A symbolic link is written through
            (the file it points to gets the table; the link stays).

        Returns
        -------
        path : Path
            The file written.

        Raises
        ------
        ValueError
            If the suffix is neither ``.csv`` nor ``.md``.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            write_text(path, self.to_csv(), newline="")
        elif suffix == ".md":
            write_text(path, str(self) + "\n")
        else:
            raise ValueError(f"cannot tell the format of {path}: name it .csv or .md.")
        return path
