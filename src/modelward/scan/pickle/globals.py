"""Classification of the globals a pickle imports: allowlist, library tier and denylist.

``classify(module, name)`` answers how dangerous importing ``module.name`` is. The allowlist is
exact (module, name) pairs seen in real checkpoints; anything else is at least *unknown*
(medium). The denylist is checked against every dotted component, because protocol 4+
``find_class`` walks attributes: ``pathlib`` + ``os.system`` is ``os.system``.

Denying a whole module (``torch.jit``) is a broad brush; an exact allowlist pair names one
reviewed function of it (``torch.jit._pickle.build_intlist`` returns its argument), so an
exact pair, written exactly so in the pickle, wins over a module-wide denial. Dotted names
never match a pair exactly, so attribute walks from an allow-listed name stay dangerous.
"""

from __future__ import annotations

import enum
import functools
import re
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING


def _words(text: str) -> list[str]:
    return text.split()


class Verdict(enum.IntEnum):
    """How a global is classified, from harmless to code execution."""

    SAFE = 0
    LIBRARY = 1
    UNKNOWN = 2
    DANGEROUS = 3


_TORCH_STORAGES = (
    "FloatStorage DoubleStorage HalfStorage BFloat16Storage LongStorage IntStorage ShortStorage "
    "CharStorage ByteStorage BoolStorage ComplexFloatStorage ComplexDoubleStorage QInt8Storage "
    "QUInt8Storage QInt32Storage QUInt4x2Storage QUInt2x4Storage UntypedStorage TypedStorage "
    "Float8_e4m3fnStorage Float8_e5m2Storage Float8_e4m3fnuzStorage Float8_e5m2fnuzStorage"
)
_TORCH_DTYPES = (
    "float32 float float64 double float16 half bfloat16 complex32 complex64 complex128 cfloat "
    "cdouble chalf uint8 uint16 uint32 uint64 int8 int16 short int32 int int64 long bool qint8 "
    "quint8 qint32 quint4x2 quint2x4 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz "
    "float8_e8m0fnu float4_e2m1fn_x2 bits1x8 bits2x4 bits4x2 bits8 bits16 strided sparse_coo "
    "sparse_csr sparse_csc sparse_bsr sparse_bsc _mkldnn contiguous_format channels_last "
    "channels_last_3d preserve_format Size device dtype layout memory_format Tensor"
)
# Legacy typed tensor classes: the ``tensors`` member of a pre-1.0 tar checkpoint names them.
_TORCH_TENSORS = (
    "FloatTensor DoubleTensor HalfTensor BFloat16Tensor LongTensor IntTensor ShortTensor "
    "CharTensor ByteTensor BoolTensor"
)
_TORCH_CUDA = _TORCH_TENSORS + (
    " FloatStorage DoubleStorage HalfStorage BFloat16Storage LongStorage IntStorage "
    "ShortStorage CharStorage ByteStorage BoolStorage ComplexFloatStorage ComplexDoubleStorage"
)
_NUMPY_CORE = "_reconstruct scalar _frombuffer ndarray dtype"

SAFE: dict[str, frozenset[str]] = {
    k: frozenset(v.split())
    for k, v in {
        "torch._utils": "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
        "_rebuild_parameter_with_state _rebuild_sparse_tensor _rebuild_nested_tensor "
        "_rebuild_qtensor _rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor "
        "_rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass _rebuild_xla_tensor "
        "_rebuild_mtia_tensor",
        "torch._tensor": "_rebuild_from_type _rebuild_from_type_v2",
        "torch.serialization": "_get_layout",
        "torch.nn.parameter": "Parameter Buffer UninitializedParameter UninitializedBuffer",
        "torch.storage": "TypedStorage UntypedStorage _load_from_bytes",
        "torch": _TORCH_STORAGES + " " + _TORCH_DTYPES + " " + _TORCH_TENSORS,
        "torch.cuda": _TORCH_CUDA,
        # TorchScript's ``.debug_pkl``/``constants.pkl`` type helpers: each returns its argument.
        "torch.jit._pickle": "build_intlist build_tensorlist build_doublelist build_boollist "
        "build_tensor_from_id restore_type_tag",
        "collections": "OrderedDict defaultdict deque Counter",
        "builtins": "set frozenset bytearray bytes complex slice range dict list tuple int float "
        "str bool object Ellipsis NotImplemented",
        "copyreg": "_reconstructor __newobj__ __newobj_ex__",
        "_codecs": "encode",
        "numpy": "ndarray dtype bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 "
        "float32 float64 complex64 complex128 str_ bytes_ object_ longlong ulonglong",
        "numpy.core.multiarray": _NUMPY_CORE,
        "numpy._core.multiarray": _NUMPY_CORE,
        "numpy.core.numeric": _NUMPY_CORE,
        "numpy._core.numeric": _NUMPY_CORE,
        # numpy 1.0-era object arrays name this shim (ndarray.__new__ under another name).
        "numpy.core._internal": "_reconstruct",
        "numpy._core._internal": "_reconstruct",
        "numpy.ma.core": "_mareconstruct MaskedArray",
        "numpy.ma": "MaskedArray",  # numpy 2 names the class by its public module
        "numpy.matrixlib.defmatrix": "matrix",
        "numpy.random._pickle": "__randomstate_ctor __generator_ctor __bit_generator_ctor",
        "numpy.random.mtrand": "RandomState",
        "numpy.random._generator": "Generator",
        "numpy.random._mt19937": "MT19937",
        "numpy.random._pcg64": "PCG64 PCG64DXSM",
        "numpy.random._philox": "Philox",
        "numpy.random._sfc64": "SFC64",
        "numpy.random.bit_generator": "SeedSequence __pyx_unpickle_SeedSequence",
        "joblib.numpy_pickle": "NumpyArrayWrapper",
        # scikit-learn's Cython ``newObj(cls)`` is ``cls.__new__(cls)`` (KD/ball trees, metrics).
        "sklearn.neighbors._kd_tree": "newObj",
        "sklearn.neighbors._ball_tree": "newObj",
        "sklearn.metrics._dist_metrics": "newObj",
        "datetime": "datetime date time timedelta timezone",
        "decimal": "Decimal",
        "fractions": "Fraction",
        "uuid": "UUID",
        "pathlib": "Path PosixPath WindowsPath PurePath PurePosixPath PureWindowsPath",
        "argparse": "Namespace",
        "enum": "Enum IntEnum",
    }.items()
}
"""Exact (module, name) pairs that real checkpoints import and that cannot run code."""

# numpy 2 writes ``numpy.dtypes.Float64DType`` and friends for dtype classes.
_NUMPY_DTYPE_CLASS = re.compile(r"[A-Z][A-Za-z0-9]*DType")

DENY_MODULES = frozenset(
    _words(
        """
    os posix nt _posixsubprocess subprocess sys socket _socket shutil runpy pty importlib pkgutil
    marshal code codeop ctypes _ctypes cProfile profile _lsprof trace pdb bdb timeit doctest pip
    _pyrepl _osx_support _aix_support mailcap idlelib lib2to3 _interpreters _xxsubinterpreters
    _xxinterpchannels interpreters concurrent.interpreters webbrowser requests urllib urllib2
    urllib3 http httplib httpx aiohttp ftplib telnetlib smtplib smtpd poplib nntplib imaplib
    xmlrpc socketserver ssl asyncio.subprocess asyncio.unix_events asyncio.windows_events
    asyncio.base_subprocess asyncio.windows_utils multiprocessing numpy.f2py numpy.distutils
    numpy.testing numpy.ctypeslib distutils setuptools torch.utils.collect_env torch.hub
    torch.utils.cpp_extension torch.fx torch.package torch.jit commands popen2 pickle _pickle
    cPickle dill cloudpickle shelve zipimport pydoc site ensurepip venv fileinput
    logging.config logging.handlers mlflow.projects pandas.io sympy.parsing
    pandas.core.computation tempfile _winapi msvcrt winreg _winreg
        """
    )
)
"""Modules whose every member is treated as dangerous (also when reached as an attribute),
except the exact pairs of ``SAFE``."""

DENY_PAIRS = frozenset(
    tuple(p.split(":"))
    for p in _words(
        """
    builtins:eval builtins:exec builtins:compile builtins:open builtins:getattr builtins:setattr
    builtins:delattr builtins:__import__ builtins:breakpoint builtins:input builtins:globals
    builtins:locals builtins:vars builtins:execfile builtins:file builtins:reload builtins:help

    types:FunctionType types:CodeType types:LambdaType types:MethodType types:new_class
    types:BuiltinFunctionType
    operator:attrgetter operator:itemgetter operator:methodcaller operator:call
    _operator:attrgetter _operator:itemgetter _operator:methodcaller _operator:call
    functools:partial functools:reduce functools:partialmethod functools:cached_property
    uuid:_get_command_stdout uuid:_popen uuid:_find_mac uuid:_find_mac_near_keyword
    logging:FileHandler logging:basicConfig io:open io:open_code io:FileIO _io:open _io:open_code
    _io:FileIO codecs:open codecs:EncodedFile copyreg:add_extension copyreg:_reduce_ex
    distutils.file_util:write_file platform:popen platform:_syscmd_ver platform:_syscmd_file
    numpy:load numpy:fromfile numpy:memmap numpy:loadtxt numpy:genfromtxt numpy:save
    numpy:savez numpy:savetxt numpy.lib.npyio:load numpy.core.memmap:memmap
    numpy._core.memmap:memmap joblib:load joblib:dump torch:load torch:save
    torch.serialization:load torch.serialization:_load torch.serialization:save
    torch.utils.collect_env:run multiprocessing.util:spawnv_passfds sympy:sympify
    sympy.core.sympify:sympify numexpr:evaluate pandas:eval pandas:read_pickle
    yaml:load yaml:unsafe_load yaml:full_load zipfile:ZipFile tarfile:open tarfile:TarFile
    joblib.numpy_pickle:NDArrayWrapper joblib.numpy_pickle_compat:NDArrayWrapper
        """
    )
)
"""(module, name) pairs that run code, read or write files, or reach the network.

joblib's legacy ``NDArrayWrapper`` calls ``np.load(<path from the pickle>, allow_pickle=True)``:
it unpickles another file, anywhere."""

DANGER_NAMES = frozenset(
    _words(
        """
    system popen popen2 popen3 popen4 spawn spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp
    spawnvpe posix_spawn posix_spawnp execl execle execlp execlpe execv execve execvp execvpe
    fork forkpty kill killpg eval exec execfile compile __import__ import_module load_module
    exec_module getattr setattr delattr globals locals vars loads load load_source run_path
    run_module runsource runcode runctx runcall run_string runstring check_call check_output
    getoutput getstatusoutput Popen startfile unlink remove rmdir rmtree removedirs rename
    write_text write_bytes write_file extractall symlink_to hardlink_to chmod chown truncate
    open open_code urlopen urlretrieve breakpoint set_trace interact pager pipepager
    tempfilepager resolve_name find_class __reduce__ __reduce_ex__ __setstate__
    __builtins__ __globals__ __subclasses__ __getattribute__ __code__ __loader__ __spec__
    __dict__ __class__ __bases__ __mro__ __base__ __init_subclass__ __closure__ __func__
    __self__ __wrapped__ f_globals f_locals f_builtins gi_frame tb_frame
        """
    )
)
"""Attribute names that are code-execution primitives whatever module they are reached from."""

SKLEARN_NEWOBJ = frozenset(
    {"sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree", "sklearn.metrics._dist_metrics"}
)
"""Modules whose ``newObj`` is ``copyreg.__newobj__`` under another name."""

NESTED_LOADERS = frozenset(
    {
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("pickle", "_loads"),
        ("cPickle", "loads"),
        ("dill", "loads"),
        ("torch.storage", "_load_from_bytes"),
    }
)
"""Callables that unpickle bytes given as argument: the bytes are scanned as nested content."""

_CLASS = re.compile(r"_?[A-Z][A-Za-z0-9_]*\Z")
_LIBRARY_PREFIXES = ("sklearn.", "torch.nn.modules.", "omegaconf.", "scipy.sparse.")
_SPARSE_CLASS = re.compile(r"(?:bsr|coo|csc|csr|dia|dok|lil)_(?:matrix|array)\Z")
"""scipy.sparse's containers have lower-case names."""
_LIBRARY_EXCLUDE = re.compile(r"\.(?:_testing|tests?|externals|datasets|_build_utils)(?:\.|$)")


def valid_name(text: str, probe: bool = False) -> bool:
    """Whether ``text`` could name a module or attribute that ``find_class`` imports.

    Not only identifiers: ``__import__("my-plugin")`` imports ``my-plugin.py`` when such a file
    sits on ``sys.path`` (the current folder, for ``python -c``), and non-ASCII identifiers are
    valid. Only empty or non-printable text (what random bytes produce) cannot be. Length is no
    bound: protocol 4 walks dotted names of any length (``path.os.path.os....system``), also
    when ``probe`` (guessing whether bytes are a pickle at all).
    """
    return len(text) > 0 and text.isprintable()


def normalize(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 name mapping the unpickler uses (``__builtin__`` → ``builtins`` ...)."""
    mapped = NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return IMPORT_MAPPING.get(module, module), name


_MAX_PARTS = max(len(m.split(".")) for m in DENY_MODULES | {p[0] for p in DENY_PAIRS})
"""Most dotted components of a denied module: longer runs of components need not be joined."""


def _dangerous(module: str, name: str) -> str | None:
    """Why ``module.name`` is dangerous, or ``None`` (linear in the number of components)."""
    mod_parts = module.split(".")
    name_parts = name.split(".")
    full = mod_parts + name_parts
    # A denied module imported directly (or one of its submodules).
    for k in range(1, min(len(mod_parts), _MAX_PARTS) + 1):
        prefix = ".".join(mod_parts[:k])
        if prefix in DENY_MODULES:
            return f"module {prefix}"
    # Attribute walks: any run of components starting at the module or at an attribute may
    # be a denied module object or a denied (module, name) pair reached through attributes.
    starts = [0, *range(len(mod_parts), len(full))]
    for i in starts:
        for k in range(i + 1, min(len(full), i + _MAX_PARTS) + 1):
            seq = ".".join(full[i:k])
            # Modules keep private aliases of what they import: random._os, collections._sys.
            if seq in DENY_MODULES or (i and seq[:1] == "_" and seq[1:] in DENY_MODULES):
                return f"module {seq} reached through {module}"
            if k < len(full) and (seq, full[k]) in DENY_PAIRS:
                return f"{seq}.{full[k]}"
    for part in name_parts:
        if part in DANGER_NAMES:
            return f"attribute {part}"
    if mod_parts[0] == "pandas" and name_parts[-1].startswith(("read_", "to_")):
        return "pandas file or network I/O"
    return None


@functools.lru_cache(maxsize=4096)
def classify(module: str, name: str) -> tuple[Verdict, str]:
    """The verdict for importing ``module.name`` and a short reason."""
    nmod, nname = normalize(module, name)
    if name in SAFE.get(module, ()) and nname in SAFE.get(nmod, ()):
        return Verdict.SAFE, "allowlisted"
    for mod, nm in {(module, name), (nmod, nname)}:
        why = _dangerous(mod, nm)
        if why is not None:
            return Verdict.DANGEROUS, why
    allowed = SAFE.get(nmod)
    if allowed is not None and nname in allowed:
        return Verdict.SAFE, "allowlisted"
    if nmod == "numpy.dtypes" and _NUMPY_DTYPE_CLASS.match(nname):
        return Verdict.SAFE, "numpy dtype class"
    if (
        nmod.startswith(_LIBRARY_PREFIXES)
        and "." not in nname
        and (
            _CLASS.match(nname) or (nmod.startswith("scipy.sparse.") and _SPARSE_CLASS.match(nname))
        )
        and not _LIBRARY_EXCLUDE.search(nmod)
    ):
        return Verdict.LIBRARY, "class from a known ML library"
    return Verdict.UNKNOWN, "not on the allowlist"
