"""Discovery walk: find the files under some folders that may be models, by name and by header.

A file is yielded when its name has a model extension (:data:`MODEL_EXTENSIONS`, whatever its size:
a malicious pickle can be a few hundred bytes), or when it is at least ``size_floor`` bytes and its
first bytes carry a model or archive magic (:func:`looks_like_model`), so that a renamed model is
still found. The walk never opens anything but regular files, and those only to read their header
(``O_NONBLOCK``: a FIFO swapped in cannot hang it). It never follows a symlinked folder; a symlink
to a file yields the target's real path, once (files are deduplicated by device and inode, which
also folds hard links). It skips pseudo-filesystems, the internals of version-control folders
(except Git LFS objects, which are model bytes), and folders deeper than ``max_depth``.

Speed (perf.md): listing is ``os.scandir`` on a directory descriptor, so the one ``stat`` every
file needs (to compare its size with the floor) is an ``fstatat`` relative to that descriptor,
without resolving the whole path again; only candidates are opened. Problems (permission denied,
vanished files, symlink loops, the depth limit) go to ``on_error(path, message)``; nothing raises.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

MIB = 1 << 20
DEFAULT_SIZE_FLOOR = 16 * MIB
DEFAULT_MAX_DEPTH = 64
HEAD_BYTES = 1032
"""Bytes read from a candidate: covers HDF5 signatures at 0, 512 and 1024 and the tar magic at 257."""

MODEL_EXTENSIONS = frozenset(
    {
        # pickle family (torch.save, joblib, numpy object arrays, gensim/paddle pickles)
        ".pkl", ".pickle", ".joblib", ".dill", ".bin", ".pt", ".pth", ".ckpt", ".pdparams",
        ".model", ".mar", ".nemo",
        # tensors and weights
        ".gguf", ".ggml", ".safetensors", ".npy", ".npz", ".msgpack",
        # Keras / TensorFlow / ONNX / mobile
        ".h5", ".hdf5", ".keras", ".pb", ".onnx", ".tflite", ".mlmodel",
        # executables that carry a model
        ".llamafile",
    }
)  # fmt: skip
"""Extensions whose files are yielded whatever their size and content.

``.model`` is included: gensim saves pickles under it and SentencePiece tokenizers use it.
``.zip``, ``.tar`` and compressed archives are not (homes hold many ordinary archives); big ones
are still yielded by their magic, and a ``name.pkl.gz`` counts as ``.pkl``.
"""

COMPRESSED_EXTENSIONS = frozenset({".gz", ".bz2", ".xz", ".lzma", ".z", ".zst"})

PSEUDO_FS_TYPES = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "securityfs", "debugfs", "tracefs", "pstore",
        "bpf", "configfs", "efivarfs", "fusectl", "binfmt_misc", "mqueue", "hugetlbfs",
        "rpc_pipefs", "nsfs", "autofs", "selinuxfs", "cgroup", "cgroup2", "fuse.portal",
        "fuse.gvfsd-fuse",
    }
)  # fmt: skip
"""Mount types never walked: kernel interfaces (reading some sysfs files has side effects),
``autofs`` (walking it triggers mounts) and desktop FUSE views of other places. ``tmpfs`` is
walked: models are staged in ``/tmp`` and ``/dev/shm``."""

PSEUDO_PATHS: dict[str, tuple[str, ...]] = {"/proc": (), "/sys": (), "/dev": ("/dev/shm",)}
"""Folders skipped by path on every Unix (even without a mount table), with the sub-folders that
are walked instead (``/dev/shm`` is a tmpfs where models are staged for fast loading)."""
if sys.platform == "darwin":  # firmlinked duplicate of the data volume already seen through /
    PSEUDO_PATHS["/System/Volumes"] = ()

VCS_FOLDERS = frozenset({".hg", ".svn", ".bzr"})
"""Version-control internals: skipped (``.git`` too, except ``.git/lfs`` whose objects are models)."""

OnError = Callable[[str, str], None]
Claim = Callable[[str, str], bool]
"""``claim(path, name)``: whether another reader takes this folder (it is then not walked)."""

_DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
)
_FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_BINARY", 0)
)
_USE_FD = os.scandir in os.supports_fd and os.stat in os.supports_dir_fd
_WINDOWS = os.name == "nt"
_REPARSE = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)


def model_extension(name: str) -> bool:
    """Whether ``name`` has a model extension (``x.pkl``, ``X.PT``, ``x.pkl.gz``)."""
    i = name.rfind(".")
    if i <= 0:
        return False
    ext = name[i:].lower()
    if ext in MODEL_EXTENSIONS:
        return True
    if ext in COMPRESSED_EXTENSIONS:
        j = name.rfind(".", 0, i)
        return j > 0 and name[j:i].lower() in MODEL_EXTENSIONS
    return False


def looks_like_model(head: bytes, size: int) -> bool:
    """Whether a file's first bytes carry the magic of a model format or of an archive.

    A superset check meant to be cheap; the scanner decides what the file really is.
    """
    if len(head) < 4:
        return False
    b0 = head[0]
    if b0 == 0x80:  # pickle protocol 2-5 (also legacy torch.save)
        return len(head) > 1 and 2 <= head[1] <= 5
    magic4 = head[:4]
    if magic4 in _MAGIC4:
        return True
    if head.startswith(_PREFIXES):
        return True
    if head[4:8] == b"TFL3" or head[257:262] == b"ustar":
        return True
    if head[:3] == b"BZh" and 0x31 <= head[3] <= 0x39:
        return True
    if len(head) >= 10 and head[8] == 0x7B:  # safetensors: u64 header length, then '{'
        n = int.from_bytes(head[:8], "little")
        return 2 <= n <= size - 8
    return head[512:520] == _HDF5 or head[1024:1032] == _HDF5


_HDF5 = b"\x89HDF\r\n\x1a\n"
_MAGIC4 = frozenset(
    {
        b"GGUF", b"lmgg", b"fmgg", b"tjgg", b"algg",  # GGUF and the older GGML/GGMF/GGJT/GGLA
        b"PK\x03\x04", _HDF5[:4], b"\x93NUM",
    }
)  # fmt: skip
_PREFIXES = (
    b"MZqFpD",  # llamafile / Cosmopolitan APE
    b"7z\xbc\xaf\x27\x1c",
    b"\x1f\x8b",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",  # zstd
)


def describe(exc: OSError) -> str:
    """A short message for a walk error."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENOENT:
        return "vanished while walking"
    if code == errno.ELOOP:
        return "symbolic link loop"
    if code == errno.ENOTDIR:
        return "no longer a folder"
    if code == errno.ENAMETOOLONG:
        return "path too long"
    return exc.strerror or str(exc)


def _mounts() -> dict[str, str]:
    """Mount point -> filesystem type, from the Linux mount table (empty elsewhere)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3:
                    mp = parts[1]
                    if "\\" in mp:  # octal escapes for space, tab, newline, backslash
                        mp = (
                            mp.encode("latin-1", "surrogateescape")
                            .decode("unicode_escape")
                            .encode("latin-1")
                            .decode("utf-8", "surrogateescape")
                        )
                    out[mp] = parts[2]
    except (OSError, UnicodeError):
        return {}
    return out


class _Walker:
    def __init__(
        self,
        skip: Collection[str],
        on_error: OnError,
        size_floor: int,
        max_depth: int,
        one_fs: bool,
        skip_pseudo: bool,
        claim: Claim | None = None,
    ) -> None:
        self.claim = claim
        self.on_error = on_error
        self.size_floor = size_floor
        self.max_depth = max_depth
        self.one_fs = one_fs
        self.seen: set[tuple[int, int]] = set()
        self.walked_mounts: set[tuple[int, int]] = set()
        # one dict lookup per folder decides whether it is special: value = why
        self.special: dict[str, str] = {}
        mounts = _mounts() if os.name == "posix" else {}
        for mp in mounts:
            self.special[mp] = "mount"
        if skip_pseudo and os.name == "posix":
            for mp, fstype in mounts.items():
                if fstype in PSEUDO_FS_TYPES:
                    self.special[mp] = "pseudo"
            for p in PSEUDO_PATHS:
                self.special[p] = "pseudo"
        for s in skip:
            self.special[os.path.realpath(s)] = "skip"
        self.has_mount_table = bool(mounts)

    # ------------------------------------------------------------------ roots
    def walk(self, roots: Sequence[Path | str]) -> Iterator[tuple[str, os.stat_result]]:
        for root in roots:
            path = os.path.realpath(root)
            try:
                st = os.stat(path)
            except OSError as exc:
                self.on_error(
                    str(root), "does not exist" if exc.errno == errno.ENOENT else describe(exc)
                )
                continue
            if stat.S_ISREG(st.st_mode):  # a file named as a root is what the user asked for
                key = (st.st_dev, st.st_ino)
                if key not in self.seen:
                    self.seen.add(key)
                    yield path, st
            elif stat.S_ISDIR(st.st_mode):
                why = self._special_root(path)
                if why == "pseudo":
                    self.on_error(path, "pseudo-filesystem; not walked")
                elif why != "skip":
                    key = (st.st_dev, st.st_ino)
                    if key not in self.walked_mounts:
                        self.walked_mounts.add(key)
                        yield from self._walk_tree(path, st.st_dev)
            else:
                self.on_error(str(root), "not a regular file or folder")

    def _special_root(self, path: str) -> str | None:
        """``skip``/``pseudo`` when ``path`` is inside such a folder."""
        p = path
        while True:
            why = self.special.get(p)
            if why in ("skip", "pseudo"):
                return why
            parent = os.path.dirname(p)
            if parent == p:
                return None
            p = parent

    # ------------------------------------------------------------------ tree
    def _walk_tree(self, top: str, top_dev: int) -> Iterator[tuple[str, os.stat_result]]:
        sep = os.sep
        stack: list[tuple[str, int]] = [(top, 0)]
        on_error = self.on_error
        exts = MODEL_EXTENSIONS
        while stack:
            dpath, depth = stack.pop()
            prefix = dpath if dpath.endswith(sep) else dpath + sep
            fd = -1
            try:
                if _USE_FD:
                    fd = os.open(dpath, _DIR_FLAGS)
                    it = os.scandir(fd)
                else:
                    it = os.scandir(dpath)
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                on_error(dpath, describe(exc))
                continue
            try:
                named: list[str] = []  # model extension: yielded whatever the size
                other: list[str] = []  # sniffed when at or above the floor
                links: list[str] = []
                with it:
                    try:
                        for entry in it:  # d_type only: no stat here
                            name = entry.name
                            try:
                                if entry.is_dir(follow_symlinks=False):
                                    self._push(
                                        stack, prefix + name, name, depth + 1, top_dev, entry
                                    )
                                elif entry.is_file(follow_symlinks=False):
                                    ext = name[name.rfind(".") :].lower()
                                    if ext in exts or (
                                        ext in COMPRESSED_EXTENSIONS and model_extension(name)
                                    ):
                                        named.append(name)
                                    else:
                                        other.append(name)
                                elif entry.is_symlink():
                                    links.append(name)
                                # FIFOs, sockets, devices: never opened
                            except OSError as exc:
                                on_error(prefix + name, describe(exc))
                    except OSError as exc:  # the folder failed while being read
                        on_error(dpath, describe(exc))
                yield from self._files(prefix, fd, named, other)
                for name in links:
                    try:
                        found = self._link(prefix + name, name)
                    except OSError as exc:
                        on_error(prefix + name, describe(exc))
                        continue
                    if found is not None:
                        yield found
            finally:
                if fd >= 0:
                    os.close(fd)

    def _stat(self, prefix: str, fd: int, name: str) -> os.stat_result:
        if fd >= 0:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        return os.stat(prefix + name, follow_symlinks=False)

    def _sizes(self, prefix: str, fd: int, names: list[str]) -> list[tuple[str, os.stat_result]]:
        """``stat`` of each of ``names`` (a folder's regular files), errors reported."""
        try:
            if fd >= 0:
                stat_at = os.stat
                return [(n, stat_at(n, dir_fd=fd, follow_symlinks=False)) for n in names]
            return [(n, os.stat(prefix + n, follow_symlinks=False)) for n in names]
        except OSError:  # one of them vanished or is unreadable: go one by one
            out = []
            for n in names:
                try:
                    out.append((n, self._stat(prefix, fd, n)))
                except OSError as exc:
                    self.on_error(prefix + n, describe(exc))
            return out

    def _files(
        self, prefix: str, fd: int, named: list[str], other: list[str]
    ) -> Iterator[tuple[str, os.stat_result]]:
        seen = self.seen
        for name, st in self._sizes(prefix, fd, named):
            if not stat.S_ISREG(st.st_mode):  # replaced since it was listed
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                yield prefix + name, st
        if not other:
            return
        floor = self.size_floor
        for name, st in self._sizes(prefix, fd, other):
            if st.st_size < floor or (st.st_dev, st.st_ino) in seen:
                continue
            try:
                fst = self._sniff(prefix + name, fd, name)
            except OSError as exc:
                self.on_error(prefix + name, describe(exc))
                continue
            if fst is not None:
                seen.add((fst.st_dev, fst.st_ino))
                yield prefix + name, fst

    def _push(
        self,
        stack: list[tuple[str, int]],
        path: str,
        name: str,
        depth: int,
        top_dev: int,
        entry: os.DirEntry[str],
    ) -> None:
        if name == ".git":  # Git internals are not models; LFS objects are
            lfs = path + os.sep + "lfs"
            if os.path.isdir(lfs) and not os.path.islink(lfs):
                self._push(stack, lfs, "lfs", depth + 1, top_dev, entry)
            return
        if name in VCS_FOLDERS:
            return
        if self.claim is not None and path not in self.special and self.claim(path, name):
            return  # somebody else (a model store) reads this folder
        if depth > self.max_depth:
            self.on_error(path, f"deeper than {self.max_depth} folders; not walked")
            return
        why = self.special.get(path)
        if why is not None:
            if why == "pseudo":
                for keep in PSEUDO_PATHS.get(path, ()):
                    if os.path.isdir(keep) and not os.path.islink(keep):
                        stack.append((keep, depth + 1))
                return
            if why == "skip":
                return
            # a mount point: another filesystem, or a bind mount of a folder already walked
            if self.one_fs:
                return
            st = os.stat(path, follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if key in self.walked_mounts:
                return
            self.walked_mounts.add(key)
        elif _WINDOWS:  # junctions are not symlinks to is_dir(follow_symlinks=False)
            if getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0) & _REPARSE:
                return
        elif (
            self.one_fs
            and not self.has_mount_table
            and entry.stat(follow_symlinks=False).st_dev != top_dev
        ):
            return
        stack.append((path, depth))

    def _sniff(self, path: str, dir_fd: int, name: str) -> os.stat_result | None:
        """The file's stat when its header looks like a model (never blocks on a FIFO)."""
        if dir_fd >= 0:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        else:
            fd = os.open(path, _FILE_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            head = os.pread(fd, HEAD_BYTES, 0) if hasattr(os, "pread") else os.read(fd, HEAD_BYTES)
        finally:
            os.close(fd)
        return st if looks_like_model(head, st.st_size) else None

    def _link(self, path: str, name: str) -> tuple[str, os.stat_result] | None:
        """A symlink: its target when that is a regular file that may be a model."""
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                if model_extension(name):  # a model was expected here
                    self.on_error(path, "broken symbolic link")
                return None
            self.on_error(path, describe(exc))
            return None
        if not stat.S_ISREG(st.st_mode):  # never follow symlinked folders
            return None
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            return None
        real = os.path.realpath(path)
        if model_extension(name) or model_extension(os.path.basename(real)):
            self.seen.add(key)
            return real, st
        if st.st_size < self.size_floor:
            return None
        fst = self._sniff(real, -1, "")
        if fst is None:
            return None
        self.seen.add(key)
        return real, fst


def find_model_files(
    roots: Sequence[Path | str],
    *,
    skip: Collection[str] = (),
    on_error: OnError,
    size_floor: int = DEFAULT_SIZE_FLOOR,
    max_depth: int = DEFAULT_MAX_DEPTH,
    one_fs: bool = False,
    skip_pseudo: bool = True,
    claim: Claim | None = None,
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield ``(real path, stat)`` of each regular file under ``roots`` that may be a model.

    ``skip``: folders not to walk (store roots already covered), compared by real path.
    ``size_floor``: files without a model extension are sniffed only from this size on.
    ``max_depth``: folders deeper than this below a root are reported and not walked.
    ``one_fs``: do not cross into other mounted filesystems.
    ``skip_pseudo``: skip ``/proc``, ``/sys``, ``/dev`` (but walk ``/dev/shm``) and mounts of
    kernel or desktop pseudo-filesystems (:data:`PSEUDO_FS_TYPES`).
    ``claim(path, name)``: asked about each folder before it is entered (not mount points nor
    version-control folders); a folder it claims (True) is not walked: a model store reads it.

    Each file is yielded once, even when reached through several links. A root that is a file is
    yielded as is. Errors go to ``on_error(path, message)``; the walk goes on.
    """
    walker = _Walker(skip, on_error, size_floor, max_depth, one_fs, skip_pseudo, claim)
    return walker.walk(roots)
