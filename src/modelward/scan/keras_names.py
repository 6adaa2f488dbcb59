"""Deny and allow lists for Keras configs: modules, callables and arguments that reach code or files."""

from __future__ import annotations

import builtins

KERAS_ROOTS = frozenset({"keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "keras_rs"})
"""Packages whose objects are Keras's own (keras 3 imports only these, KerasSaveable only)."""

DENY_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy",
        "pty", "pickle", "_pickle", "marshal", "code", "codeop", "ctypes", "webbrowser",
        "urllib", "urllib2", "urllib3", "requests", "http", "httplib", "httpx", "aiohttp",
        "ftplib", "smtplib", "telnetlib", "asyncio", "multiprocessing", "pdb", "bdb", "cProfile",
        "profile", "trace", "timeit", "doctest", "pip", "setuptools", "distutils", "pkgutil",
        "types", "inspect", "operator", "_operator", "functools", "io", "_io", "pathlib",
        "glob", "tempfile", "signal", "threading", "_thread", "commands", "popen2", "platform",
        "pydoc", "mailcap", "uuid", "imaplib", "logging", "zipfile", "tarfile", "dill",
        "cloudpickle", "joblib", "shelve", "dbm", "sqlite3", "linecache", "fileinput",
        "posixpath", "ntpath", "__main__builtins", "_posixsubprocess", "_winapi", "winreg",
        "__builtin__", "__builtins__", "exec", "eval",
    }
)  # fmt: skip
"""Modules whose callables run commands, code, or touch files and the network: critical."""

SAFE_BUILTINS = frozenset(
    {
        "abs", "all", "any", "bool", "bytes", "complex", "dict", "divmod", "enumerate", "float",
        "frozenset", "int", "isinstance", "len", "list", "max", "min", "pow", "range", "round",
        "set", "slice", "sorted", "str", "sum", "tuple", "zip", "function", "hash", "reversed",
    }
)  # fmt: skip
BUILTIN_NAMES = frozenset(dir(builtins))

DANGEROUS_NAMES = frozenset(
    {
        "system", "popen", "exec", "eval", "execfile", "compile", "run", "call", "check_call",
        "check_output", "getoutput", "getstatusoutput", "spawn", "spawnv", "spawnl", "execv",
        "execve", "execvp", "execl", "fork", "remove", "unlink", "rmtree", "rmdir", "rename",
        "write_file", "read_file", "py_function", "py_func", "numpy_function", "load", "loads",
        "open", "urlopen", "urlretrieve", "get_file", "import_module", "__import__", "getattr",
        "setattr", "Popen", "load_library", "load_op_library", "kill",
    }
)  # fmt: skip
"""Callable names that are dangerous whatever unknown module they come from: high."""

FILE_GADGETS = frozenset(
    {
        "get_file", "TFSMLayer", "load_model", "save_model", "load_weights", "save_weights",
        "load_img", "save_img", "image_dataset_from_directory", "text_dataset_from_directory",
        "audio_dataset_from_directory", "timeseries_dataset_from_directory", "export",
        "ModelCheckpoint", "CSVLogger", "BackupAndRestore", "TensorBoard", "RemoteMonitor",
        "ExportArchive", "load", "save",
    }
)  # fmt: skip
"""Keras callables and classes that read, write or fetch files when built: high."""

UNSAFE_KERAS = frozenset(
    {
        "enable_unsafe_deserialization", "deserialize_keras_object", "model_from_json",
        "model_from_config", "model_from_yaml", "serialize_keras_object", "clear_session",
        "register_keras_serializable", "get_registered_object", "set_random_seed",
    }
)  # fmt: skip
"""Keras's own NON_MODELING_APIS (keras/src/saving/serialization_lib.py) besides file access."""

FILE_KEYS = frozenset(
    {"filepath", "file_path", "url", "origin", "cache_dir", "cache_subdir", "fname", "directory"}
)
"""Config arguments that name a file or a URL to fetch."""
PATH_VALUE_KEYS = frozenset(
    {"vocabulary", "merges", "proto", "vocabulary_file", "spm_model_file", "vocab_file"}
)
"""Arguments that may be data or a path to a file read on load (lookup layers, tokenizers)."""

TF_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
"""tf.keras layers that wrap a TensorFlow API function named in ``config.function``."""
TF_PY_FUNCS = frozenset(
    {"py_function", "numpy_function", "py_func", "load_op_library", "load_library"}
)
TF_FILE_FUNCS = frozenset(
    {"read_file", "write_file", "matching_files", "save", "load", "save_v2", "restore_v2"}
)
