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
files were purged (when, by whom) and can no longer be restored.

Symbolic links are refused: quarantining a link would leave the model it points at, and following it
would move a file outside the path the decision named. Quarantine the target's own path instead.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
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
    CopyCorrupt,
    VaultError,
    crash_point,
    exists,
    fsync_dir,
    read_json,
    remove_durably,
    resume_move,
    sha256_file,
    temp_for,
    write_durably,
    write_json,
)

__all__ = [
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
    def from_dict(cls, d: Mapping[str, Any]) -> StoredFile:
        return cls(
            original_path=str(d["original_path"]),
            stored=str(d["stored"]),
            sha256=str(d["sha256"]),
            size=int(d["size"]),
            mode=int(d["mode"]),
            uid=int(d["uid"]),
            gid=int(d["gid"]),
            atime_ns=int(d["atime_ns"]),
            mtime_ns=int(d["mtime_ns"]),
            aliases=tuple(str(a) for a in d.get("aliases") or ()),
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
            return cls(
                id=str(d["id"]),
                files=tuple(StoredFile.from_dict(f) for f in d["files"]),
                reason=str(d["reason"]),
                rule=str(d["rule"]),
                quarantined_at=str(d["quarantined_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
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

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: Path | None = None, *, create: bool = True) -> Vault:
        """Open (creating it when ``create``) the vault at ``root`` and finish interrupted work."""
        vault = cls(root if root is not None else default_root())
        vault._init(create)
        vault.recover()
        return vault

    def _init(self, create: bool) -> None:
        root = self.root
        if root.is_symlink() or (exists(root) and not root.is_dir()):
            raise VaultError(f"{root} is not a quarantine vault (not a folder)")
        if root.is_dir():
            if (root / MARKER).is_file():
                if read_json(root / MARKER).get("schema") != SCHEMA:
                    raise VaultError(f"{root} is not a quarantine vault of this version")
                return
            if any(root.iterdir()):
                raise VaultError(
                    f"{root} is not a quarantine vault (no {MARKER}) and is not empty; "
                    "choose an empty or new folder with --vault"
                )
        elif not create:
            raise VaultError(f"no quarantine vault at {root}: nothing was quarantined there")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        for sub in ("journal", "entries"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        write_json(root / MARKER, {"schema": SCHEMA})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ----------------------------------------------------------------- reading
    def list(self) -> list[Entry]:
        out = []
        entries = self.root / "entries"
        for child in sorted(entries.iterdir()) if entries.is_dir() else []:
            if (child / "entry.json").is_file():
                out.append(Entry.from_dict(read_json(child / "entry.json")))
        return sorted(out, key=lambda e: (e.quarantined_at, e.id))

    def show(self, entry_id: str) -> Entry:
        if not entry_id or not all(c in "0123456789abcdef" for c in entry_id):
            raise VaultError(f"{entry_id!r} is not a quarantine entry id (hex)")
        path = self.root / "entries" / entry_id / "entry.json"
        if not path.is_file():
            raise VaultError(f"no quarantine entry {entry_id!r} in {self.root}")
        return Entry.from_dict(read_json(path))

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
        """
        if not paths:
            raise VaultError("nothing to quarantine")
        originals = [Path(os.path.abspath(p)) for p in paths]
        if len(set(originals)) != len(originals):
            raise VaultError("the same file is named twice")
        want = {os.path.abspath(p): d.lower() for p, d in (expected or {}).items()}
        entry_id = secrets.token_hex(6)
        links = {os.path.abspath(p): v for p, v in (aliases or {}).items()}
        files = [
            self._stored(
                path,
                f"entries/{entry_id}/files/{n}",
                want.get(str(path)),
                _aliases(path, links.get(str(path), ())),
            )
            for n, path in enumerate(originals)
        ]
        entry = Entry(entry_id, tuple(files), reason, decision_rule, _now())
        op = {"op": "quarantine", "phase": "forward", "entry": entry.to_dict()}
        with self._locked():
            (self.root / "entries" / entry_id / "files").mkdir(mode=0o700, parents=True)
            fsync_dir(self.root / "entries")
            write_json(self._journal(entry_id), op)
            crash_point("journal")
            try:
                self._run(op)
            except ContentChanged as exc:
                if exc.path is None or exc.path not in want:
                    raise
                raise StaleContent(
                    f"{exc.path} changed since the inventory: expected sha256 {exc.expected}, "
                    f"found {exc.found}; not quarantined; run the inventory again",
                    path=exc.path,
                    expected=exc.expected,
                    found=exc.found,
                ) from None
        return entry

    @staticmethod
    def _stored(
        path: Path, stored: str, sha256: str | None, aliases: tuple[str, ...] = ()
    ) -> StoredFile:
        """The record of a file about to be quarantined (hashed here unless ``sha256`` is given)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise VaultError(f"{path}: no such file") from None
        if stat.S_ISLNK(st.st_mode):
            raise VaultError(
                f"{path} is a symbolic link; quarantine the file it points at "
                f"({os.path.realpath(path)}) by its own path"
            )
        if not stat.S_ISREG(st.st_mode):
            raise VaultError(f"{path} is not a regular file")
        for note in [note_path(Path(p)) for p in (str(path), *aliases)]:
            if exists(note):
                raise VaultError(f"{note} already exists; move it away first")
        return StoredFile(
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

    def restore(self, entry_id: str) -> Entry:
        """Put every file of the entry back, verified, with its mode, owner (when allowed) and times."""
        with self._locked():
            entry = self.show(entry_id)
            for f in entry.files:
                Path(f.original_path).parent.mkdir(parents=True, exist_ok=True)
                if exists(Path(f.original_path)):
                    raise VaultError(
                        f"{f.original_path} exists again; move it away before restoring {entry_id} "
                        "(modelward never overwrites a file)"
                    )
                got = sha256_file(self.root / f.stored)
                if got != f.sha256:
                    raise VaultError(
                        f"the vault copy of {f.original_path} is damaged (SHA-256 {got}, "
                        f"expected {f.sha256}); nothing was restored"
                    )
            op = {"op": "restore", "phase": "forward", "entry": entry.to_dict()}
            write_json(self._journal(entry_id), op)
            crash_point("journal")
            self._run(op)
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
        """Finish (or roll back) every interrupted operation; returns what was done."""
        done = []
        with self._locked():
            journal = self.root / "journal"
            for path in sorted(journal.glob("*.json")) if journal.is_dir() else []:
                try:
                    op = read_json(path)
                    done.append(self._run(op))
                except ContentChanged:
                    done.append(f"rolled back quarantine {path.stem} (a file changed)")
                except VaultError as exc:
                    done.append(f"could not finish {path.stem}: {exc.diagnostics()}")
        return done

    def _journal(self, entry_id: str) -> Path:
        return self.root / "journal" / f"{entry_id}.json"

    def _run(self, op: dict[str, Any]) -> str:
        entry = Entry.from_dict(op["entry"])
        kind = op.get("op")
        try:
            if kind == "quarantine" and op.get("phase") == "forward":
                try:
                    self._forward(entry)
                except (ContentChanged, CopyCorrupt, OSError) as exc:
                    op["phase"] = "backward"
                    write_json(self._journal(entry.id), op)
                    self._backward(entry, rollback=True)
                    if isinstance(exc, ContentChanged):
                        raise
                    raise VaultError(
                        f"could not quarantine ({exc}); every file was put back"
                    ) from None
                return f"quarantined {entry.id}"
            if kind == "quarantine":
                self._backward(entry, rollback=True)
                raise ContentChanged(f"quarantine {entry.id} rolled back")
            if kind == "restore":
                self._backward(entry, rollback=False)
                return f"restored {entry.id}"
            if kind == "purge":
                self._purge(entry, str(op.get("purged_at") or _now()), op.get("purged_by"))
                return f"purged {entry.id}"
        except OSError as exc:
            raise VaultError(
                f"{kind} {entry.id} could not finish ({exc}); nothing is lost: the journal keeps "
                "it and the next run of modelward retries it"
            ) from None
        raise VaultError(f"unknown journal operation {kind!r}")

    def _forward(self, entry: Entry) -> None:
        for f in entry.files:
            resume_move(Path(f.original_path), self.root / f.stored, f.sha256)
        for f in entry.files:
            for note in f.note_paths:
                if not note.is_file():
                    write_durably(note, _note(entry, f, self.root, note), 0o644)
                    crash_point("note")
        write_json(self.root / "entries" / entry.id / "entry.json", entry.to_dict())
        crash_point("entry")
        remove_durably(self._journal(entry.id))

    def _backward(self, entry: Entry, *, rollback: bool) -> None:
        """Move every file of ``entry`` back to its path (restore, or roll back a quarantine).

        The recorded mode and times are put back on files moved here, on every file of a restore,
        and on a rolled-back file only when its content is still the recorded one (a file that
        changed under the quarantine keeps its new times)."""
        for f in entry.files:
            original = Path(f.original_path)
            stored = self.root / f.stored
            moved = False
            if exists(stored) or exists(temp_for(stored)) or exists(temp_for(original)):
                resume_move(stored, original, f.sha256)
                moved = True
            if moved or not rollback or (exists(original) and sha256_file(original) == f.sha256):
                _restore_stat(original, f)
            for note in f.note_paths:
                remove_durably(note)
        self._drop(entry)

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


def _restore_stat(path: Path, f: StoredFile) -> None:
    if not exists(path):
        return
    if hasattr(os, "chown") and (os.geteuid() == 0 or f.uid == os.geteuid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, f.uid, f.gid, follow_symlinks=False)
    os.chmod(path, f.mode)
    os.utime(path, ns=(f.atime_ns, f.mtime_ns), follow_symlinks=False)
