"""The one error type an import raises: it names the file (and row) and what to do."""

from __future__ import annotations


class ImportInputError(Exception):
    """Bad input: the message names the file, the row where it makes sense, and a remedy."""

    def __init__(self, file: str, problem: str, *, row: int | None = None, hint: str = "") -> None:
        self.file = file
        self.row = row
        self.problem = problem
        self.hint = hint
        where = f"{file}, row {row}" if row is not None else file
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)
