"""The quarantine vault: moves model files out of reach, reversibly, and survives a crash at any step.

Layout of a vault folder (owner-only permissions)::

    modelward-vault.json        marks the folder as a vault
    lock                        flock: one operation at a time
    journal/<op>.json           an operation in progress, written and fsynced before anything moves
    entries/<id>/entry.json     a completed quarantine: where each file came from, its SHA-256 and stat
    entries/<id>/files/<n>      the files themselves

An operation (quarantine, restore, purge) is journaled first; :meth:`Vault.recover` (run by
:meth:`Vault.open`) finishes every journaled operation, or rolls a quarantine back when a file's
content changed under it, so every file is either where it was, byte-identical, or complete in the
vault. Moves are :func:`~modelward.policy.journal.resume_move` (rename, or copy + fsync + verify +
rename + delete across filesystems, the copy read back before the delete). The note
``<original>.modelward-quarantine.txt`` is written last, so nothing that looks like the model is
left at its path; a file reached through links (a Hugging Face snapshot's link to its blob) gets a
note beside each link too. A restore removes every note; a purge keeps them, rewritten to say the
files were purged (when, by whom) and can no longer be restored; quarantining the same path again
renames such a note aside (``<original>.modelward-quarantine.<old id>.txt``) and leaves its own.

Symbolic links are refused: quarantining a link would leave the model it points at, and following it
would move a file outside the path the decision named. Quarantine the target's own path instead.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelward.policy.journal import (
    ContentChanged,
    Ident,
    Occupied,
    Stat,
    VaultError,
    crash_point,
    exists,
    fsync_dir,
    ident,
    is_file,
    link_new,
    read_json,
    remove_durably,
    resume_move,
    sha256_file,
    temp_for,
    write_durably,
    write_json,
)

__all__ = [
    "AlreadyQuarantined",
    "ContentChanged",
    "Entry",
    "StaleContent",
    "StoredFile",
    "Vault",
    "VaultError",
    "default_root",
]

SCHEMA = "modelward.vault/v1"
MARKER = "modelward-vault.json"
NOTE_SUFFIX = ".modelward-quarantine.txt"
ID_LENGTH = 12
_ID = re.compile(r"[0-9a-f]{12}")
_SHA = re.compile(r"[0-9a-f]{64}")
MODE_MASK = 0o777
"""Only permission bits are ever restored: never setuid, setgid or sticky (a planted or edited
record must not be able to create a privileged file)."""


class AlreadyQuarantined(VaultError):
    """Every file asked for is already in the vault, as one entry (another run moved it)."""

    def __init__(self, message: str, entry: Entry) -> None:
        super().__init__(message)
        self.entry = entry


def _abs_path(value: Any, what: str) -> str:
    """``value`` when it is an absolute, normalised path; a :class:`VaultError` otherwise."""
    if (
        not isinstance(value, str)
        or not os.path.isabs(value)
        or os.path.normpath(value) != value
        or "\0" in value
        or value.startswith("//")
    ):
        raise VaultError(f"a vault record has a bad {what}: {value!r} (not an absolute path)")
    return value


class StaleContent(ContentChanged):
    """A file is no longer the one the decision was about: its SHA-256 is not the expected one
    (the inventory is older than the file). Nothing was moved."""


def default_root(env: Mapping[str, str] | None = None) -> Path:
    """``$MODELWARD_DATA_DIR/quarantine``, else ``$XDG_DATA_HOME/modelward/quarantine``, else
    ``~/.local/share/modelward/quarantine``."""
    e = os.environ if env is None else env
    if e.get("MODELWARD_DATA_DIR"):
        return Path(os.path.expanduser(e["MODELWARD_DATA_DIR"])) / "quarantine"
    if e.get("XDG_DATA_HOME"):
        return Path(e["XDG_DATA_HOME"]) / "modelward" / "quarantine"
    return Path.home() / ".local" / "share" / "modelward" / "quarantine"


def note_path(original: Path) -> Path:
    return original.with_name(original.name + NOTE_SUFFIX)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One quarantined file: where it was and what it was."""

    original_path: str
    stored: str
    """Relative to the vault root."""
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    atime_ns: int
    mtime_ns: int
    aliases: tuple[str, ...] = ()
    """Other paths the user reaches the file by (a Hugging Face snapshot's link to a blob): a
    note is left beside each of them too."""

    @property
    def note_paths(self) -> list[Path]:
        """Where the notes about this file go: beside it, and beside each of its aliases."""
        return [note_path(Path(p)) for p in (self.original_path, *self.aliases)]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "original_path": self.original_path,
            "stored": self.stored,
            "sha256": self.sha256,
            "size": self.size,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "atime_ns": self.atime_ns,
            "mtime_ns": self.mtime_ns,
        }
        if self.aliases:
            out["aliases"] = list(self.aliases)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], entry_id: str, n: int) -> StoredFile:
        """A record read from disk, checked: ``stored`` must be exactly ``entries/<id>/files/<n>``,
        paths absolute and normalised, the SHA-256 hex; the mode keeps its permission bits only."""
        stored = d["stored"]
        if stored != f"entries/{entry_id}/files/{n}":
            raise VaultError(
                f"a vault record stores file {n} at {stored!r}, not entries/{entry_id}/files/{n}"
            )
        sha = d["sha256"]
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise VaultError(f"a vault record has a bad SHA-256: {sha!r}")
        aliases = d.get("aliases") or []
        if not isinstance(aliases, list):
            raise VaultError("a vault record has bad aliases (not a list)")
        values = [d[k] for k in ("size", "mode", "uid", "gid", "atime_ns", "mtime_ns")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise VaultError("a vault record has a bad size, mode, owner or time")
        return cls(
            original_path=_abs_path(d["original_path"], "original_path"),
            stored=stored,
            sha256=sha,
            size=int(d["size"]),
            mode=int(d["mode"]) & MODE_MASK,
            uid=int(d["uid"]),
            gid=int(d["gid"]),
            atime_ns=int(d["atime_ns"]),
            mtime_ns=int(d["mtime_ns"]),
            aliases=tuple(_abs_path(a, "alias") for a in aliases),
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """A quarantine: one file or a whole model (several files) moved into the vault together."""

    id: str
    files: tuple[StoredFile, ...]
    reason: str
    rule: str
    quarantined_at: str

    @property
    def original_path(self) -> str:
        """The first file's path (a whole model's entry lists every file in ``files``)."""
        return self.files[0].original_path

    @property
    def sha256(self) -> str:
        return self.files[0].sha256

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "original_path": self.original_path,
            "sha256": self.sha256,
            "size": self.size,
            "reason": self.reason,
            "rule": self.rule,
            "quarantined_at": self.quarantined_at,
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        try:
            entry_id = d["id"]
            if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id):
                raise VaultError(f"a vault record has a bad entry id: {entry_id!r}")
            files = d["files"]
            if not isinstance(files, list) or not files:
                raise VaultError(f"vault entry {entry_id} lists no files")
            return cls(
                id=entry_id,
                files=tuple(StoredFile.from_dict(f, entry_id, n) for n, f in enumerate(files)),
                reason=str(d["reason"]),
                rule=str(d["rule"]),
                quarantined_at=str(d["quarantined_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VaultError(f"a vault entry is malformed: {exc!r}") from None


def _note(entry: Entry, f: StoredFile, root: Path, at: Path) -> bytes:
    """The note left at ``at`` (the file's path, or one of its aliases)."""
    others = [g.original_path for g in entry.files if g is not f]
    lines = [
        "This file was quarantined by modelward.",
        "",
        f"File:       {f.original_path}",
    ]
    if note_path(Path(f.original_path)) != at:
        lines.append(f"Link:       {str(at)[: -len(NOTE_SUFFIX)]} (pointed at the file)")
    lines += [
        f"SHA-256:    {f.sha256}",
        f"Reason:     {entry.reason}",
        f"Rule:       {entry.rule}",
        f"When:       {entry.quarantined_at}",
        f"Vault:      {root}",
        f"Entry id:   {entry.id}",
    ]
    if others:
        lines.append(f"Moved with: {', '.join(others)}")
    lines += [
        "",
        "To bring it back (byte-identical, with its mode, owner and times):",
        f"    modelward quarantine restore {entry.id} --vault {root}",
        "To delete it for good:",
        f"    modelward quarantine purge {entry.id} --yes --vault {root}",
        "",
    ]
    return "\n".join(lines).encode()


def _purged_note(entry: Entry, f: StoredFile, root: Path, when: str, who: str | None) -> bytes:
    """What a note says once its entry is purged: the file is gone for good."""
    by = f" by {who}" if who else ""
    lines = [
        f"This file was quarantined by modelward, then purged on {when}{by}:",
        "it was deleted for good and can no longer be restored.",
        "",
        f"File:       {f.original_path}",
        f"SHA-256:    {f.sha256}",
        f"Reason:     {entry.reason}",
        f"Rule:       {entry.rule}",
        f"Quarantined: {entry.quarantined_at}",
        f"Purged:     {when}{by}",
        f"Entry id:   {entry.id} (no longer in the vault {root})",
        "",
        "This note is kept as the record of what happened; delete it when you no longer need it.",
        "",
    ]
    return "\n".join(lines).encode()


_PURGED_HEAD = b"This file was quarantined by modelward, then purged on "
_PURGED_ID = re.compile(rb"^Entry id:   ([0-9a-f]{12}) ", re.MULTILINE)


def _purged_id(note: Path) -> str | None:
    """The entry id a note left by a purge names (a regular file starting as such notes do), or
    ``None`` when ``note`` is anything else."""
    try:
        if not stat.S_ISREG(os.lstat(note).st_mode):
            return None
        with open(note, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if not head.startswith(_PURGED_HEAD):
        return None
    found = _PURGED_ID.search(head)
    return found.group(1).decode() if found else "purged"


def _keep_purged_note(note: Path) -> None:
    """Rename the note of a purged entry at ``note`` aside, to
    ``<original>.modelward-quarantine.<old id>.txt`` (never over another file), so a new
    quarantine of the same path can leave its own note and the record of the purge is kept."""
    old = _purged_id(note)
    if old is None:
        return
    stem = note.name[: -len(".txt")]
    aside = note.with_name(f"{stem}.{old}.txt")
    while not link_new(note, aside):
        aside = note.with_name(f"{stem}.{old}-{secrets.token_hex(2)}.txt")


def _who() -> str | None:
    """Who is purging: the user (and who ran sudo), when the system says."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return None
    sudo = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {sudo})" if sudo and sudo != user else user


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Vault:
    """A quarantine vault rooted at ``root``; use :meth:`open` (which recovers) rather than ``Vault()``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self.recovered: builtins.list[str] = []
        """What :meth:`open` finished or rolled back (one line each), to be shown to the user."""
        self.unset: dict[str, str] = {}
        """Files put back whose mode or times the system did not let us set: path -> why."""
        self._lock_fd: int | None = None
        self._lock_depth = 0

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: Path | None = None, *, create: bool = True) -> Vault:
        """Open (creating it when ``create``) the vault at ``root`` and finish interrupted work."""
        vault = cls(root if root is not None else default_root())
        try:
            vault._init(create)
        except OSError as exc:
            raise VaultError(
                f"{vault.root}: cannot use it as a quarantine vault: {exc.strerror}"
            ) from None
        vault.recovered = vault.recover()
        return vault

    def _init(self, create: bool) -> None:
        root = self.root
        if root.is_symlink() or (exists(root) and not root.is_dir()):
            raise VaultError(f"{root} is not a quarantine vault (not a folder)")
        if root.is_dir() and self._opened_existing():
            return
        if not create:
            raise VaultError(f"no quarantine vault at {root}: nothing was quarantined there")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700, follow_symlinks=False)
        with self._locked():  # another process may be making the same vault right now
            if self._opened_existing():
                return
            for sub in ("journal", "entries"):
                (root / sub).mkdir(mode=0o700, exist_ok=True)
                os.chmod(root / sub, 0o700, follow_symlinks=False)
            self._check_safe()
            write_json(root / MARKER, {"schema": SCHEMA})

    def _opened_existing(self) -> bool:
        """Whether the folder is a vault already (checked); ``False`` when it is one to make (empty,
        or holding only what making a vault leaves); a :class:`VaultError` for any other folder."""
        root = self.root
        if (root / MARKER).is_file():
            self._check_safe()
            if read_json(root / MARKER).get("schema") != SCHEMA:
                raise VaultError(f"{root} is not a quarantine vault of this version")
            return True
        ours = {"lock", "journal", "entries"}
        if any(p.name not in ours and not p.name.startswith(f".{MARKER}.") for p in root.iterdir()):
            raise VaultError(
                f"{root} is not a quarantine vault (no {MARKER}) and is not empty; "
                "choose an empty or new folder with --vault"
            )
        return False

    def _check_safe(self) -> None:
        """Refuse a vault others could tamper with: the folder and its ``journal`` and ``entries``
        must be real folders (not links), owned by the user running modelward, not writable by
        group or others. Its records decide what is moved where, so they must be the user's own."""
        me = os.geteuid()
        for folder in (self.root, self.root / "journal", self.root / "entries"):
            try:
                st = os.lstat(folder)
            except FileNotFoundError:
                if folder == self.root:
                    raise
                os.mkdir(folder, 0o700)  # a vault from before a crash in its creation
                st = os.lstat(folder)
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                raise VaultError(f"{folder} is not a folder (a link?): refusing to use the vault")
            if st.st_uid != me:
                raise VaultError(
                    f"{folder} belongs to user id {st.st_uid}, not to you ({me}): refusing to "
                    "use a vault someone else controls"
                )
            if st.st_mode & 0o022:
                raise VaultError(
                    f"{folder} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}): "
                    f"refusing to use the vault; fix it with: chmod 700 {folder}"
                )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The vault's lock (``flock`` on ``lock``), held for a whole operation; reentrant."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        try:
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise VaultError(
                f"{self.root / 'lock'}: cannot lock the vault: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd, self._lock_depth = fd, 1
            yield
        finally:
            self._lock_fd, self._lock_depth = None, 0
            os.close(fd)

    # ----------------------------------------------------------------- reading
    def list(self) -> list[Entry]:
        out = []
        entries = self.root / "entries"
        for child in sorted(entries.iterdir()) if entries.is_dir() else []:
            if _ID.fullmatch(child.name) and (child / "entry.json").is_file():
                out.append(self._entry(child.name))
        return sorted(out, key=lambda e: (e.quarantined_at, e.id))

    def _entry(self, entry_id: str) -> Entry:
        path = self.root / "entries" / entry_id / "entry.json"
        entry = Entry.from_dict(read_json(path))
        if entry.id != entry_id:
            raise VaultError(f"{path}: the record names entry {entry.id}, not {entry_id}")
        return entry

    def show(self, entry_id: str) -> Entry:
        if not _ID.fullmatch(entry_id or ""):
            raise VaultError(
                f"{entry_id!r} is not a quarantine entry id ({ID_LENGTH} hex digits, as "
                "`modelward quarantine list` shows)"
            )
        if not (self.root / "entries" / entry_id / "entry.json").is_file():
            raise VaultError(f"no quarantine entry {entry_id!r} in {self.root}")
        return self._entry(entry_id)

    # ----------------------------------------------------------------- quarantine
    def quarantine(
        self,
        paths: Sequence[Path],
        reason: str,
        decision_rule: str,
        *,
        expected: Mapping[str, str] | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> Entry:
        """Move ``paths`` (one file, or every file of a model) into the vault as one entry.

        ``expected`` maps a path (absolute) to the SHA-256 the caller's decision was about: that
        file is not hashed beforehand; the bytes actually moved are checked against it, and when
        they differ every file is put back and :class:`StaleContent` raised.

        ``aliases`` maps a path (absolute) to the other paths the user knows it by (the links of
        a Hugging Face snapshot to its blob): a note is left beside each of them as well.

        Raises :class:`AlreadyQuarantined` when every path is gone and is in one vault entry
        already (another run quarantined it).
        """
        if not paths:
            raise VaultError("nothing to quarantine")
        originals = [Path(os.path.abspath(p)) for p in paths]
        if len(set(originals)) != len(originals):
            raise VaultError("the same file is named twice")
        want = {os.path.abspath(p): d.lower() for p, d in (expected or {}).items()}
        links = {os.path.abspath(p): v for p, v in (aliases or {}).items()}
        with self._locked():
            self._already(originals, want)
            entry_id = secrets.token_hex(ID_LENGTH // 2)
            ids: builtins.list[builtins.list[int] | None] = []
            stats: builtins.list[builtins.list[int]] = []
            files = []
            for n, path in enumerate(originals):
                record, st_id, st_stat = self._stored(
                    path,
                    f"entries/{entry_id}/files/{n}",
                    want.get(str(path)),
                    _aliases(path, links.get(str(path), ())),
                )
                files.append(record)
                ids.append(list(st_id))
                stats.append(list(st_stat))
            entry = Entry(entry_id, tuple(files), reason, decision_rule, _now())
            op = {**self._owner(), "op": "quarantine", "phase": "forward", "ids": ids}
            op["stats"] = stats
            op["entry"] = entry.to_dict()
            write_json(self._journal(entry_id), op)
            crash_point("journal")
            try:
                self._run(op)
            except ContentChanged as exc:
                if exc.path is None or exc.path not in want:
                    raise
                raise StaleContent(
                    f"{exc.path} changed since the inventory: expected sha256 {exc.expected}, "
                    f"found {exc.found}; not quarantined; run the inventory again"
                    + (f" ({exc.kept})" if exc.kept else ""),
                    path=exc.path,
                    expected=exc.expected,
                    found=exc.found,
                    kept=exc.kept,
                ) from None
        return entry

    @staticmethod
    def _owner() -> dict[str, Any]:
        return {"pid": os.getpid(), "started": _now()}

    def _already(self, originals: Sequence[Path], want: Mapping[str, str]) -> None:
        """Raise :class:`AlreadyQuarantined` when every path is gone and in one entry."""
        if any(exists(p) for p in originals):
            return
        names = {str(p) for p in originals}
        for entry in self.list():
            got = {f.original_path: f.sha256 for f in entry.files}
            if names <= got.keys() and all(want.get(p, got[p]) == got[p] for p in names):
                raise AlreadyQuarantined(
                    f"{', '.join(sorted(names))} already quarantined as {entry.id}", entry
                )

    @staticmethod
    def _stored(
        path: Path, stored: str, sha256: str | None, aliases: tuple[str, ...] = ()
    ) -> tuple[StoredFile, Ident, Stat]:
        """The record of a file about to be quarantined (hashed here unless ``sha256`` is given),
        and its identity (device, inode) for recovery."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise VaultError(f"{path}: no such file") from None
        except OSError as exc:
            raise VaultError(f"{path}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            raise VaultError(
                f"{path} is a symbolic link; quarantine the file it points at "
                f"({os.path.realpath(path)}) by its own path"
            )
        if not stat.S_ISREG(st.st_mode):
            raise VaultError(f"{path} is not a regular file")
        for note in [note_path(Path(p)) for p in (str(path), *aliases)]:
            if exists(note) and _purged_id(note) is None:
                raise VaultError(f"{note} already exists; move it away first")
        record = StoredFile(
            original_path=str(path),
            stored=stored,
            sha256=sha256 or sha256_file(path),
            size=st.st_size,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            atime_ns=st.st_atime_ns,
            mtime_ns=st.st_mtime_ns,
            aliases=aliases,
        )
        return record, (st.st_dev, st.st_ino), (st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def restore(self, entry_id: str) -> Entry:
        """Put every file of the entry back, verified, with its mode (permission bits only: never
        setuid, setgid or sticky), owner (when allowed) and times. Folders that are gone are made
        again (mode 0755, the file's owner when run as root); a restore that fails removes the
        folders it made (those still empty)."""
        with self._locked():
            entry = self.show(entry_id)
            made: builtins.list[Path] = []
            try:
                ids = []
                for f in entry.files:
                    original = Path(f.original_path)
                    made += _make_folders(original.parent, f)
                    if exists(original):
                        raise VaultError(
                            f"{f.original_path} exists again; move it away before restoring "
                            f"{entry_id} (modelward never overwrites a file)"
                        )
                    got = sha256_file(self.root / f.stored)
                    if got != f.sha256:
                        raise VaultError(
                            f"the vault copy of {f.original_path} is damaged (SHA-256 {got}, "
                            f"expected {f.sha256}); nothing was restored"
                        )
                    found = ident(self.root / f.stored)
                    ids.append(list(found) if found else None)
                op = {**self._owner(), "op": "restore", "phase": "forward", "ids": ids}
                op["entry"] = entry.to_dict()
                write_json(self._journal(entry_id), op)
                crash_point("journal")
                self._run(op)
            except BaseException:
                _remove_empty(made)
                raise
        return entry

    def purge(self, entry_id: str, *, confirm: bool = False) -> Entry:
        """Delete the vault's copy of an entry for good (``confirm`` must be true).

        The notes left where the files were are kept, rewritten to say the entry was purged (when
        and by whom) and can no longer be restored."""
        if not confirm:
            raise VaultError(f"purging {entry_id} deletes its files for good; confirm it")
        with self._locked():
            entry = self.show(entry_id)
            op = {
                **self._owner(),
                "op": "purge",
                "phase": "forward",
                "entry": entry.to_dict(),
                "purged_at": _now(),
                "purged_by": _who(),
            }
            write_json(self._journal(entry_id), op)
            crash_point("journal")
            self._run(op)
        return entry

    # ----------------------------------------------------------------- recovery
    def recover(self) -> builtins.list[str]:
        """Finish (or roll back) every interrupted operation; returns what was done.

        Runs under the vault's lock: a journal seen here belongs to a process that died (a live
        one holds the lock until its journal is gone)."""
        done = []
        with self._locked():
            journal = self.root / "journal"
            for path in sorted(journal.glob("*.json")) if journal.is_dir() else []:
                try:
                    if not _ID.fullmatch(path.stem):
                        raise VaultError(f"{path.name} is not a journal record of this vault")
                    op = read_json(path)
                    entry = op.get("entry")
                    if not isinstance(entry, dict) or entry.get("id") != path.stem:
                        raise VaultError(f"{path.name} does not record entry {path.stem}")
                    done.append(self._run(op, recovering=True))
                except ContentChanged as exc:
                    kept = f"; {exc.kept}" if exc.kept else ""
                    done.append(f"rolled back quarantine {path.stem} (a file changed{kept})")
                except VaultError as exc:
                    done.append(f"could not finish {path.stem}: {exc.diagnostics()}")
            done += self._sweep()
        return done

    def _sweep(self) -> builtins.list[str]:
        """Remove entry folders that hold no file and belong to no entry or journal (left by a
        crash before anything moved)."""
        out = []
        entries = self.root / "entries"
        for child in sorted(entries.iterdir()) if entries.is_dir() else []:
            if (child / "entry.json").exists() or self._journal(child.name).exists():
                continue
            if child.is_symlink() or not child.is_dir():
                continue
            if any(p.is_file() or p.is_symlink() for p in child.rglob("*")):
                out.append(f"kept {child}: it holds files but no entry record")
                continue
            shutil.rmtree(child, ignore_errors=True)
        if out or entries.is_dir():
            fsync_dir(entries)
        return out

    def _journal(self, entry_id: str) -> Path:
        return self.root / "journal" / f"{entry_id}.json"

    def _run(self, op: dict[str, Any], *, recovering: bool = False) -> str:
        entry = Entry.from_dict(op["entry"])
        kind = op.get("op")
        ids = _ids(op.get("ids"), len(entry.files))
        try:
            if kind == "quarantine" and op.get("phase") == "forward":
                if recovering and self._partial_copies(entry, ids):
                    self._rollback(entry, op, ids)
                    return (
                        f"rolled back quarantine {entry.id} (a copy into the vault was never "
                        "completed); every file was put back"
                    )
                try:
                    warnings = self._forward(entry, ids, _stats(op.get("stats"), len(ids)))
                except (VaultError, OSError) as exc:
                    unset = self._rollback(entry, op, ids)
                    if isinstance(exc, ContentChanged):
                        raise
                    why = exc.diagnostics() if isinstance(exc, VaultError) else str(exc)
                    raise VaultError(
                        f"could not quarantine ({why}); every file was put back"
                        + "".join(f"; {line}" for line in unset)
                    ) from None
                return "; ".join([f"quarantined {entry.id}", *warnings])
            if kind == "quarantine":
                self._backward(
                    entry, rollback=True, ids=_ids(op.get("back_ids"), len(ids)), fwd=ids
                )
                raise ContentChanged(f"quarantine {entry.id} rolled back")
            if kind == "restore":
                return self._restore(entry, ids)
            if kind == "purge":
                self._purge(entry, str(op.get("purged_at") or _now()), op.get("purged_by"))
                return f"purged {entry.id}"
        except OSError as exc:
            raise VaultError(
                f"{kind} {entry.id} could not finish ({exc}); nothing is lost: the journal keeps "
                "it and the next run of modelward retries it"
            ) from None
        raise VaultError(f"unknown journal operation {kind!r}")

    def _partial_copies(self, entry: Entry, ids: Sequence[Ident | None]) -> builtins.list[Path]:
        """The copies into the vault that stopped part way (a kill, a full disk): the file is
        still at its path, the copy (not the file itself, by device and inode) shorter than it.
        Such a quarantine never completed and may have been reported failed: recovery rolls it
        back rather than finishing it."""
        out = []
        for f, fid in zip(entry.files, ids, strict=True):
            stored = self.root / f.stored
            half = temp_for(stored)
            if exists(stored) or not exists(half) or not exists(Path(f.original_path)):
                continue
            if fid is None or ident(half) in (None, tuple(fid)):
                continue
            with contextlib.suppress(OSError):
                if os.lstat(half).st_size < f.size:
                    out.append(half)
        return out

    def _rollback(
        self, entry: Entry, op: dict[str, Any], ids: Sequence[Ident | None]
    ) -> builtins.list[str]:
        """Put every file of a quarantine that cannot go on back where it was.

        Unfinished copies are removed first (a full disk gets its space back before the journal
        is rewritten); when the journal still cannot be rewritten the files are put back anyway
        (the rollback ends by removing the journal)."""
        for half in self._partial_copies(entry, ids):
            remove_durably(half)
        back = []
        for f in entry.files:
            found = ident(self.root / f.stored)
            back.append(list(found) if found else None)
        op.update(phase="backward", back_ids=back)
        with contextlib.suppress(OSError):
            write_json(self._journal(entry.id), op)
        return _unset_lines(
            self._backward(entry, rollback=True, ids=_ids(back, len(back)), fwd=ids)
        )

    def _forward(
        self, entry: Entry, ids: Sequence[Ident | None], stats: Sequence[Stat | None]
    ) -> builtins.list[str]:
        files = self.root / "entries" / entry.id / "files"
        if not files.is_dir():
            files.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_dir(files.parent)
            fsync_dir(self.root / "entries")
        warnings = []
        for f, src_id, src_stat in zip(entry.files, ids, stats, strict=True):
            warning = resume_move(
                Path(f.original_path),
                self.root / f.stored,
                f.sha256,
                size=f.size,
                src_id=src_id,
                src_stat=src_stat,
            )
            if warning:
                warnings.append(warning)
        for f in entry.files:
            for note in f.note_paths:
                _keep_purged_note(note)
                if not note.is_file():
                    write_durably(note, _note(entry, f, self.root, note), 0o644)
                    crash_point("note")
        write_json(self.root / "entries" / entry.id / "entry.json", entry.to_dict())
        crash_point("entry")
        remove_durably(self._journal(entry.id))
        return warnings

    def _restore(self, entry: Entry, ids: Sequence[Ident | None]) -> str:
        """Run (or resume) a restore; when a path holds another file now, undo it instead.

        Folders that are gone are made again first, as :meth:`restore` does (a restore that
        failed with its journal kept removed the folders it made)."""
        for f in entry.files:
            _make_folders(Path(f.original_path).parent, f)
        taken = [
            f.original_path
            for f, fid in zip(entry.files, ids, strict=True)
            if exists(Path(f.original_path))
            and not is_file(Path(f.original_path), f.sha256, f.size, fid)
        ]
        try:
            if not taken:
                unset = self._backward(entry, rollback=False, ids=ids, fwd=None)
                self.unset.update(unset)
                return "; ".join([f"restored {entry.id}", *_unset_lines(unset)])
        except Occupied as exc:
            taken = [exc.diagnostics()]
        self._undo_restore(entry, ids)
        raise Occupied(
            f"restore of {entry.id} not done: {', '.join(taken)} is another file now (yours: "
            f"left alone); every file of {entry.id} is kept in the vault; move it away and run "
            f"`modelward quarantine restore {entry.id}` again"
        )

    def _undo_restore(self, entry: Entry, ids: Sequence[Ident | None]) -> None:
        """Bring the files of an unfinished restore back into the vault; the entry stays."""
        for f, fid in zip(entry.files, ids, strict=True):
            original, stored = Path(f.original_path), self.root / f.stored
            temp = temp_for(original)
            if exists(temp) and is_file(temp, f.sha256, f.size, fid):
                if exists(stored):
                    os.unlink(temp)  # a copy: the vault still holds the file
                else:
                    os.rename(temp, stored)
                    fsync_dir(stored.parent)
                fsync_dir(temp.parent)
            if exists(original) and is_file(original, f.sha256, f.size, fid):
                if not exists(stored):
                    resume_move(original, stored, f.sha256, size=f.size, src_id=ident(original))
                elif ident(stored) != ident(original) and is_file(stored, f.sha256, f.size, None):
                    remove_durably(original)  # the restored copy; the vault's is whole
                else:
                    continue
                for note in f.note_paths:
                    if not note.is_file():
                        write_durably(note, _note(entry, f, self.root, note), 0o644)
        remove_durably(self._journal(entry.id))

    def _backward(
        self,
        entry: Entry,
        *,
        rollback: bool,
        ids: Sequence[Ident | None],
        fwd: Sequence[Ident | None] | None,
    ) -> dict[str, str]:
        """Move every file of ``entry`` back to its path (restore, or roll back a quarantine);
        returns, per path, why its mode or times could not be set (when they could not).

        ``ids`` are the identities of the vault's copies (recorded before the move), ``fwd`` those
        of the originals (a rollback). The recorded mode and times are put back only on a file
        that is the one moved: the same file (device, inode) or its recorded size and SHA-256;
        a file that changed, or that the user put there since, keeps its own."""
        unset: dict[str, str] = {}
        for n, f in enumerate(entry.files):
            original = Path(f.original_path)
            stored = self.root / f.stored
            src_id = ids[n]
            half = temp_for(stored)  # a quarantine's move in progress
            if rollback and exists(half) and not exists(stored):
                if is_file(half, f.sha256, f.size, fwd[n] if fwd else None):
                    os.rename(half, stored)  # finish that step, then move it back
                    fsync_dir(stored.parent)
                    src_id = ident(stored)
                elif exists(original):
                    remove_durably(half)  # an unfinished copy: the original is where it was
                else:
                    raise VaultError(
                        f"{half} holds an unfinished move of {original}; it was kept (the "
                        "journal keeps the operation)"
                    )
            moved = False
            if exists(stored) or exists(temp_for(original)):
                resume_move(stored, original, f.sha256, size=f.size, src_id=src_id)
                moved = True
            if moved or is_file(original, f.sha256, f.size, src_id if not rollback else None):
                why = _restore_stat(original, f)
                if why:
                    unset[f.original_path] = why
            for note in f.note_paths:
                remove_durably(note)
        self._drop(entry)
        return unset

    def _purge(self, entry: Entry, when: str, who: Any) -> None:
        for f in entry.files:
            remove_durably(self.root / f.stored)
            crash_point("delete")
        for f in entry.files:  # keep the notes (the record), saying the files are gone for good
            for note in f.note_paths:
                if os.path.isfile(note) and not os.path.islink(note):
                    text = _purged_note(entry, f, self.root, when, str(who) if who else None)
                    write_durably(note, text, 0o644)
                    crash_point("note")
        self._drop(entry)

    def _drop(self, entry: Entry) -> None:
        folder = self.root / "entries" / entry.id
        remove_durably(folder / "entry.json")
        shutil.rmtree(folder, ignore_errors=True)
        fsync_dir(self.root / "entries")
        remove_durably(self._journal(entry.id))


def _aliases(path: Path, links: Sequence[str]) -> tuple[str, ...]:
    """The aliases of ``path`` that still lead to it: links whose target is ``path``."""
    out = []
    real = os.path.realpath(path)
    for link in dict.fromkeys(os.path.abspath(a) for a in links):
        if link != str(path) and os.path.islink(link) and os.path.realpath(link) == real:
            out.append(link)
    return tuple(out)


def _restore_stat(path: Path, f: StoredFile) -> str:
    """Give ``path`` its recorded owner (when allowed), mode and times. The bytes are back and
    verified by then, so a system that does not let us set them (a file of another user) is
    no failure: returns why they could not be set ("" when they were)."""
    if ident(path) is None:  # gone, or not a regular file: nothing of ours to set
        return ""
    if hasattr(os, "chown") and (os.geteuid() == 0 or f.uid == os.geteuid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, f.uid, f.gid, follow_symlinks=False)
    why = []
    try:
        os.chmod(path, f.mode & MODE_MASK)
    except PermissionError as exc:
        why.append(f"mode: {exc.strerror}")
    try:
        os.utime(path, ns=(f.atime_ns, f.mtime_ns), follow_symlinks=False)
    except PermissionError as exc:
        why.append(f"times: {exc.strerror}")
    return f"its mode/times could not be set: {', '.join(why)}" if why else ""


def _ids(value: Any, n: int) -> builtins.list[Ident | None]:
    """The identities (device, inode) a journal recorded, one per file (``None``: unknown)."""
    out: builtins.list[Ident | None] = [None] * n
    if isinstance(value, list) and len(value) == n:
        for i, v in enumerate(value):
            if isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v):
                out[i] = (v[0], v[1])
    return out


def _stats(value: Any, n: int) -> builtins.list[Stat | None]:
    """The size, modification and change times a journal recorded per file (``None``: unknown)."""
    out: builtins.list[Stat | None] = [None] * n
    if isinstance(value, list) and len(value) == n:
        for i, v in enumerate(value):
            if isinstance(v, list) and len(v) == 3 and all(type(x) is int for x in v):
                out[i] = (v[0], v[1], v[2])
    return out


def _unset_lines(unset: Mapping[str, str]) -> builtins.list[str]:
    return [f"{path} is back ({why})" for path, why in unset.items()]


def _make_folders(folder: Path, f: StoredFile) -> builtins.list[Path]:
    """Make ``folder`` and its missing parents (mode 0755; the file's owner when run as root);
    returns the folders made, outermost first. A clear error when a path on the way is a file."""
    missing = []
    p = folder
    while not os.path.isdir(p):
        if os.path.lexists(p):
            raise VaultError(
                f"cannot restore {f.original_path}: {p} is not a folder (move it away first)"
            )
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    made: builtins.list[Path] = []
    try:
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            made.append(d)
            os.chmod(d, 0o755)
            if hasattr(os, "chown") and os.geteuid() == 0:
                os.chown(d, f.uid, f.gid, follow_symlinks=False)
    except OSError as exc:
        _remove_empty(made)
        raise VaultError(
            f"cannot restore {f.original_path}: {exc.strerror} ({exc.filename})"
        ) from None
    return made


def _remove_empty(made: Sequence[Path]) -> None:
    """Remove the folders a failed restore made, innermost first, only while they are empty."""
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError:
            continue
