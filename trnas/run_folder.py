"""Keeping a search's run folder whole: one search at a time (a lock), a run resumed only with
the settings it began with, and a new run in the folder only when asked, the earlier run's
files moved aside rather than mixed with the new ones."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from nas_problem.archive import ArchiveError, repair, unreadable_path
from nas_problem.files import make_folder

from .config import UsageError, yaml_text

LOCK_NAME = ".lock"
# every file a search writes in its run folder (archive repairs add archive.unreadable-N.jsonl)
RUN_FILES = ("config.yaml", "archive.jsonl", "log.txt", "summary.json", "front.json", "front.csv", "front.png",
             "population.json", "population.csv", "evaluations.json", "evaluations.csv")


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True  # another user's process, or a pid we cannot read: assume it runs
    return True


class RunFolder:
    """A run folder held by this process: ``with RunFolder(path) as run:`` makes the folder if
    needed and locks it, and on leaving unlocks it (and removes it again if it was made here
    and nothing was written in it).

    The lock is an flock on ``.lock``, which the kernel drops when its process ends however it
    ends, so a lock left by a killed run is stale by construction; the file names the holder
    (pid, host, start) for the refusal. Where the file system has no flock, the holder's pid is
    checked for life instead (on the same host). ``files`` are the names a run writes there
    and ``what`` names the run in messages (a search by default)."""

    def __init__(self, path, files=RUN_FILES, what="search"):
        self.path = Path(path)
        self.files, self.what = tuple(files), what
        self.lock_path = self.path / LOCK_NAME
        self.stale = None  # what a lock left by a killed run said, once taken over
        self._descriptor = None
        self._made = False

    def __enter__(self) -> "RunFolder":
        self._made = make_folder(self.path)
        try:
            self._lock()
        except BaseException:
            self._remove_if_made()
            raise
        return self

    def __exit__(self, *exc):
        if self._descriptor is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._descriptor)
            self._descriptor = None
        self._remove_if_made()
        return False

    def _remove_if_made(self):
        if self._made and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def _lock(self):
        while True:
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                self._refuse(_holder(self.lock_path.read_text()))
            except OSError as error:
                try:
                    if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                    self._check_holder_without_flock()
                except BaseException:
                    os.close(descriptor)
                    raise
            # the holder before us removes the file as it unlocks: lock the file that is there now
            try:
                current = os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(descriptor).st_ino:
                break
            os.close(descriptor)
        left = _holder(os.read(descriptor, 4096).decode(errors="replace"))
        self.stale = left or None
        os.ftruncate(descriptor, 0)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.pwrite(descriptor, json.dumps(mine).encode(), 0)
        self._descriptor = descriptor

    def _check_holder_without_flock(self):
        holder = _holder(self.lock_path.read_text())
        if holder and (holder.get("host") != socket.gethostname() or _alive(holder.get("pid"))) \
                and holder.get("pid") != os.getpid():
            self._refuse(holder)

    def _refuse(self, holder: dict):
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}" \
            if holder else "another process"
        raise UsageError(f"{self.path} is in use by another {self.what} ({who}); wait for it to end, or choose "
                         f"another out_dir")

    def refuse_if_in_use(self):
        """Refuse at once, before any work, a folder whose lock is held."""
        try:
            descriptor = os.open(self.lock_path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self._refuse(_holder(self.lock_path.read_text()))
        except OSError:
            pass  # no flock here: taking the lock checks the holder's pid instead
        finally:
            os.close(descriptor)

    # ----- what the folder holds -----
    def run_files(self) -> list[str]:
        return [name for name in self.files if (self.path / name).exists()]

    def check_start(self, config: dict, defaults: dict, free, resume: bool, restart: bool):
        """Refuse a start that would mix two runs: a fresh start in a folder holding a run, or a
        resume with settings (other than the ``free`` ones) that change the search."""
        files = self.run_files()
        if files and not (resume or restart):
            raise UsageError(f"{self.path} already holds a {self.what} ({', '.join(files[:3])}): --resume continues "
                             f"it, --restart starts a new one there (moving its files to {self.path}/previous-N), "
                             f"or choose another out_dir")
        if resume and not files:
            raise UsageError(f"nothing to resume: {self.path / 'archive.jsonl'} does not exist")
        earlier = self.path / "config.yaml"
        if resume and earlier.exists():
            try:
                settings = yaml.safe_load(earlier.read_text())
            except yaml.YAMLError:
                settings = None
            if not isinstance(settings, dict):
                raise UsageError(f"{earlier} is not a readable config, so a resume cannot be checked against it; "
                                 f"--restart starts a new run in the folder")
            changes = changed_keys(settings, config, defaults, free)
            if changes:
                raise UsageError(f"--resume with settings that change the search: {', '.join(changes)}; resume with "
                                 f"the run's own settings, or --restart to start a new run in {self.path}")

    def set_aside(self) -> Path | None:
        """Move the earlier run's files into a new ``previous-N`` folder inside the run folder
        (None when there are none)."""
        if not self.run_files():
            return None
        n = 1
        while (aside := self.path / f"previous-{n}").exists():
            n += 1
        aside.mkdir()
        for path in self.path.iterdir():
            if path.name in self.files or path.name.startswith("archive.unreadable-"):
                path.rename(aside / path.name)
        return aside

    def open_archive(self, archive, repair_first: bool) -> list[str]:
        """Attach ``archive`` to the folder's archive file (repaired first if asked); returns
        what to log. A corrupt file is refused naming its lines and the way on."""
        path = self.path / "archive.jsonl"
        notes = []
        if repair_first and path.exists():
            kept, moved, aside = repair(path)
            notes.append(f"--repair-archive: kept {kept} records; moved line(s) {', '.join(map(str, moved))} to "
                         f"{aside}" if moved else "--repair-archive: every line of the archive is a record")
        try:
            archive.attach(path)
        except ArchiveError as error:
            raise UsageError(f"{error}; --repair-archive (with --resume) keeps the {error.n_readable} readable "
                             f"records and moves the {len(error.unreadable)} other line(s) to "
                             f"{unreadable_path(path)}") from None
        if self.stale:
            notes.append(f"took over a lock left by pid {self.stale.get('pid', '?')} on "
                         f"{self.stale.get('host', '?')} (it is no longer running)")
        return notes


def changed_keys(earlier: dict, config: dict, defaults: dict, free) -> list[str]:
    """``key (earlier -> now)`` for every setting that changes the search; ``free`` ones may differ."""
    changes = []
    for key in defaults:
        before = earlier.get(key, defaults[key])
        if key not in free and before != config[key]:
            changes.append(f"{key} ({_short(before)} -> {_short(config[key])})")
    return changes


def _short(value) -> str:
    text = yaml_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


@contextmanager
def logged(folder: Path, report, resume_hint: str):
    """``say(line)``: ``report`` it and append it to the folder's log.txt. A lost Ray worker or an
    interrupt is logged there too, a lost worker raised again with ``resume_hint``, the way on."""
    from evaluation.evaluators import WorkerError
    with open(folder / "log.txt", "a") as log:
        def say(line: str):
            report(line)
            log.write(line + "\n")
            log.flush()

        try:
            yield say
        except WorkerError as error:
            message = f"{error}; {resume_hint}"
            log.write(f"error: {message}\n")
            raise WorkerError(message) from error
        except KeyboardInterrupt:
            log.write(f"interrupted at {time.strftime('%Y-%m-%d %H:%M:%S')}; {resume_hint}\n")
            raise
