"""The error an import raises: it names the file (and row) and what to do."""

from __future__ import annotations


class ImportInputError(Exception):
    """Bad input: the message names the file, the row where it makes sense, and a remedy."""

    exit_code = 1  # the command's

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


class NoRoom(ImportInputError):
    """Too little free disk space for a file's copy: a full disk, not bad input."""

    exit_code = 74  # as every full-disk stop (cli.EXIT_DISK_FULL)
