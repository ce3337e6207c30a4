"""``music-tracker report``: every dashboard as a static HTML site in the data folder's
``report/``, for the command and for the pipeline's report step alike; and its copy into
a folder of another site (``--output``), swapped in whole.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from music_tracker import files, interrupts
from music_tracker.lock import ReportBusy, report_lock
from music_tracker.reporting.definitions import load_dashboards
from music_tracker.reporting.static_site import Built, Context, ReportError, build_report
from music_tracker.settings import Settings
from music_tracker.transform import UNFINISHED_MARK, build_fingerprint
from music_tracker.warehouse import WarehouseBusy

REPORT_MARK = "assets/report.js"  # a folder holding this is a report written here
# in each copy (--output): what it holds, one relative path a line; the next copy replaces
# the folder only if it holds nothing else
COPY_LIST = ".music-tracker-copy"
SCRATCH_MARK = ".music-tracker-scratch"  # in the folder a copy is made in, beside the output
_LONGEST_NAME = 255 - len(".") - len(".12345678")  # of the output: its scratch's is longer


class OutputRefused(Exception):
    """The folder named for the copy is one the copy would wrongly replace."""


class CopyFailed(Exception):
    """The report was written, but its copy (``--output``) could not be; the copy that was
    there stays."""


def report(
    settings: Settings,
    *,
    on_page: Callable[[str], None] | None = None,
    wait_s: float | None = None,
    copy_to: Path | None = None,
) -> dict[str, Any]:
    """Render the dashboards into ``report/``, then copy it to ``copy_to`` when given,
    holding the report's lock (one report at a time per data folder: ReportBusy after
    ``wait_s``, the commands' ``lock_wait_s`` unless given). DefinitionError for a bad
    definition, ReportError when the warehouse cannot give what they need, CopyFailed,
    OutputRefused for a report/ that is a link or a copy's folder that must not be
    replaced."""
    wait_s = settings.lock_wait_s if wait_s is None else wait_s
    if settings.report_dir.is_symlink():  # swapped aside as a whole: the link, not its folder
        raise OutputRefused(
            f"{settings.report_dir} is a link (to {settings.report_dir.readlink()}), which the "
            "report would replace with a folder of its own: remove the link, and name that "
            "folder with --output to have the report copied there"
        )
    with report_lock(settings.data_dir, "report", wait_s=wait_s):
        context = Context(  # its time once the report is ours to write (a wait is minutes)
            timezone=settings.timezone,
            stream_threshold_ms=settings.stream_threshold_ms,
            built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
        try:
            summary = build_report(
                settings.warehouse_path,
                settings.report_dir,
                context,
                dashboards=load_dashboards(),
                on_page=on_page,
                memory_limit=settings.duckdb_memory_limit,
                wait_s=wait_s,
                built=Built(
                    fingerprint=build_fingerprint(settings),
                    finished=not (settings.data_dir / UNFINISHED_MARK).exists(),
                ),
            ).as_dict()
        except WarehouseBusy as exc:  # a writer: told as the report's own lock is (75)
            raise ReportBusy(str(exc)) from None
        except OSError as exc:  # told as a ReportError: a full disk exits 74 (cli)
            raise ReportError(f"cannot write the report in {settings.report_dir}: {exc}") from exc
        if copy_to is not None:
            try:
                summary["copied_to"] = str(copy_report(settings.report_dir, copy_to))
            except OSError as exc:
                said = f"cannot copy the report to {copy_to}: {_why(exc)}"
                if files.disk_full(said):  # the copy's disk, which may not be the data's
                    said += (
                        f"; the disk holding {copy_to.parent} is full: free some space there,"
                        " or name a folder on another disk with --output (the report itself"
                        " is written)"
                    )
                raise CopyFailed(said) from exc
    return summary


def _why(exc: OSError) -> str:
    """An error in a line: shutil's copy gathers one per file, as a list of (source,
    target, error) that printed as kilobytes of paths (helper-63, on a full disk)."""
    errors = exc.args[0] if isinstance(exc, shutil.Error) and exc.args else None
    if not isinstance(errors, list) or not errors:
        return str(exc)
    more = f" (and {len(errors) - 1:,} more files)" if len(errors) > 1 else ""
    return f"{errors[0][2]}{more}"


def check_output(named: Path, settings: Settings) -> Path:
    """The folder named for the copy, as an absolute path without links; refused
    (OutputRefused), before the report is built, when the copy would wrongly replace it:
    one holding what no copy wrote (the owner's site, a repository, a file put beside the
    report), the data folder or its report, or one the swap cannot replace (not writable,
    its parent not writable, a mount point), or a path that cannot be resolved (a loop of
    links)."""
    try:
        output = named.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links
        raise OutputRefused(f"--output {named} cannot be followed: {exc}") from None
    data, report_dir = settings.data_dir.resolve(), settings.report_dir.resolve()
    for folder in (data, report_dir):
        # replacing the output would take the data folder (or the report) with it
        if output == folder or folder.is_relative_to(output) or output.is_relative_to(folder):
            raise OutputRefused(
                f"--output {output} holds or lies inside the data folder ({data}): the copy "
                "replaces its folder as a whole; choose a folder outside it"
            )
    try:
        _check_replaceable(output, settings.report_dir)
        _check_swappable(output)
    except OSError as exc:  # a folder in it that cannot be read: what it holds is unknown
        raise OutputRefused(
            f"--output {output} cannot be checked ({exc.strerror or exc}: {exc.filename}): "
            "the copy replaces the folder as a whole, and only a folder whose every file "
            "the last copy wrote is replaced"
        ) from None
    return output


def _check_swappable(output: Path) -> None:
    swap = "the copy is written beside it and swapped in by renaming the folder"
    parent = next((p for p in output.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputRefused(f"--output {output}: {parent} is a file, not a folder")
    if len(os.fsencode(output.name)) > _LONGEST_NAME:  # the scratch's name is 10 longer
        raise OutputRefused(
            f"--output {output}: {swap}, under a name 10 bytes longer than its own, which "
            f"is then too long for the file system: choose a name of at most {_LONGEST_NAME} "
            "bytes"
        )
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputRefused(
            f"--output {output}: {swap}, and {parent} cannot be written by this user: "
            "choose a folder inside one you can write"
        )
    if output.is_dir() and not os.access(output, os.W_OK | os.X_OK):
        raise OutputRefused(
            f"--output {output} cannot be written by this user, and {swap} (which needs "
            "it): make it writable, or choose another folder"
        )
    if output.is_dir() and _is_mount_point(output):
        raise OutputRefused(
            f"--output {output} is a mount point: {swap}, which a mount point cannot be; "
            f"choose a folder inside it (e.g. {output / 'music'})"
        )


def _is_mount_point(folder: Path) -> bool:
    """Whether ``folder`` is a mount point: of another file system, or a bind mount of the
    same one (a container's volume), which only the kernel's table of mounts tells."""
    if os.path.ismount(folder):
        return True
    try:
        table = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:  # not Linux: the device check above is all there is
        return False
    # the fifth field, with space, tab, newline and backslash written in octal
    unescape = re.compile(r"\\([0-7]{3})")
    points = {
        unescape.sub(lambda m: chr(int(m[1], 8)), line.split()[4]) for line in table.splitlines()
    }
    return str(folder.resolve()) in points


def _check_replaceable(output: Path, report_dir: Path) -> None:
    """OutputRefused unless ``output`` is missing, empty, or holds only what the last copy
    wrote (its list, ``COPY_LIST``; a copy made before the list: what ``report_dir`` holds,
    and pages in its folders); OSError for a folder in it that cannot be read."""
    if not output.exists() and not output.is_symlink():
        return
    if not output.is_dir():
        raise OutputRefused(f"--output {output} is not a folder: name a folder")
    if not any(output.iterdir()):
        return
    if not (output / REPORT_MARK).is_file():
        raise OutputRefused(
            f"--output {output} holds files that are not a report written by music-tracker, "
            "and the copy replaces the folder as a whole: choose a new or empty folder "
            f"(e.g. {output / 'music'})"
        )
    foreign = _not_copied(output, report_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise OutputRefused(
            f"--output {output} holds what is not part of the report ({shown}), and the "
            "copy replaces the folder as a whole: move them out of it, or choose another "
            "folder"
        )


def _not_copied(output: Path, report_dir: Path) -> list[str]:
    """What ``output`` holds that the last copy did not write, relative, sorted."""
    listed = output / COPY_LIST
    if listed.is_file() and not listed.is_symlink():
        # a damaged list matches nothing it damaged: those files are not taken
        written = set(listed.read_text(encoding="utf-8", errors="replace").splitlines())
        written.add(COPY_LIST)
        legacy = False
    elif report_dir.is_dir():  # a copy from before the list: the report's files, pages
        written, legacy = set(_tree(report_dir)), True
    else:  # no report to judge it by yet: judged when the report is written, before the swap
        return []
    folders = {str(Path(w).parent) for w in written} | {"."}
    for folder in set(folders):  # every folder above a written file, too
        folders.update(str(p) for p in Path(folder).parents)
    foreign = []
    for top, dirs, names in os.walk(output, onerror=_raise):  # links listed, not followed
        here = Path(top).relative_to(output)
        for name in [*dirs, *names]:
            relative = str(here / name)
            path = output / relative
            if path.is_dir() and not path.is_symlink():
                ok = relative in folders
            else:
                ok = relative in written or (
                    legacy and path.suffix == ".html" and str(here) in folders - {"."}
                )
            if path.is_symlink() or not ok:
                foreign.append(relative)
                if name in dirs:  # named once, not with all it holds
                    dirs.remove(name)
    return sorted(foreign)


def _raise(exc: OSError) -> None:
    raise exc


def _tree(folder: Path) -> list[str]:
    """Every file under ``folder``, relative."""
    return [
        str((Path(top) / name).relative_to(folder))
        for top, _dirs, names in os.walk(folder, onerror=_raise)
        for name in names
    ]


def copy_report(report_dir: Path, output: Path) -> Path:
    """The finished report copied beside ``output``, then swapped in by renames;
    OSError when it cannot be (the copy that was there stays), OutputRefused when
    ``output`` now holds what is not part of the report, or held it when it was swapped
    (what was added while the copy was made is kept beside it, named)."""
    files.make_folders(output.parent, mode=0o755)  # open to any user, as the copy is
    _put_back_interrupted(output)
    # names of our own beside it: a folder of the owner's is never taken for a leftover
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    partial, old = scratch / "new", scratch / "old"
    try:
        # the mark tells a leftover of ours from a folder of the owner's; its lock, held
        # while this copy lives, tells another copy that this one is at work
        with (scratch / SCRATCH_MARK).open("w") as mark:
            fcntl.flock(mark, fcntl.LOCK_EX)
            shutil.copytree(report_dir, partial)
            _make_public(partial)
            with interrupts.held():  # a Ctrl+C waits for the check and both renames
                _check_replaceable(output, report_dir)  # what was put there meanwhile
                if output.exists():
                    output.rename(old)
                partial.rename(output)
            if old.exists():
                _keep_what_came_late(old, report_dir, scratch)
    except BaseException:  # a failure or Ctrl+C: the copy that was there stays
        if old.exists() and not output.exists():
            old.rename(output)
        if (scratch / SCRATCH_MARK).exists():  # not one kept for what came late
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    _remove_abandoned(output)  # only now: the copy before was one of them, maybe
    return output


def _keep_what_came_late(old: Path, report_dir: Path, scratch: Path) -> None:
    """The copy just replaced, checked once more: a file put in it between the last check
    and the swap (a sync, the owner) is kept with it, and the scratch folder unmarked so
    that no copy ever removes it; OutputRefused names them."""
    late = _not_copied(old, report_dir)
    if late:
        (scratch / SCRATCH_MARK).unlink()
        raise OutputRefused(
            f"the report was copied, but {', '.join(late[:3])} came into the folder while "
            f"it was swapped in: kept, with the copy before, in {old}"
        )
    shutil.rmtree(old, ignore_errors=True)


def _make_public(copy: Path) -> None:
    """Every file readable and every folder open to any user, whatever the umask: the copy
    is for a web server that runs as a user of its own. Then the list of what it holds
    (``COPY_LIST``), by which the next copy knows the folder as its own."""
    written = []
    for top, _dirs, names in os.walk(copy, onerror=_raise):
        Path(top).chmod(0o755)
        for name in names:
            (Path(top) / name).chmod(0o644)
            written.append(str((Path(top) / name).relative_to(copy)))
    files.write_text(copy / COPY_LIST, "".join(f"{w}\n" for w in sorted(written)), mode=0o644)


def _scratches(output: Path) -> Iterator[tuple[Path, IO[str]]]:
    """Scratch folders of copies no longer at work beside ``output`` (named as
    ``copy_report`` names its own, holding its mark and nothing but ``new`` and ``old``,
    their mark's lock free), each yielded with that lock held."""
    prefix = f".{output.name}."
    for path in sorted(output.parent.glob(f"{glob.escape(prefix)}????????")):
        mark = path / SCRATCH_MARK
        if not path.is_dir() or path.is_symlink() or not mark.is_file() or mark.is_symlink():
            continue
        if not {p.name for p in path.iterdir()} <= {"new", "old", SCRATCH_MARK}:
            continue
        with mark.open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another copy at work in it
                continue
            yield path, held


def _put_back_interrupted(output: Path) -> None:
    """A copy killed between its two renames left no ``output``: the copy before it, in
    its scratch's ``old``, goes back (the newest, should there be several)."""
    if output.exists() or output.is_symlink():
        return
    olds = [path / "old" for path, _ in _scratches(output) if (path / "old").is_dir()]
    if olds:
        max(olds, key=lambda p: p.stat().st_mtime).rename(output)


def _remove_abandoned(output: Path) -> None:
    """What copies stopped between their steps left beside ``output``, once a copy is in
    place."""
    for path, _ in _scratches(output):
        shutil.rmtree(path, ignore_errors=True)
