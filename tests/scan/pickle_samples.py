"""Builders of malicious pickle samples (harmless payloads: ``true``/``print``), one per technique.

Other tests may import these to embed payloads in containers. Nothing here is ever loaded.
"""

from __future__ import annotations

import struct


def s0(text: str) -> bytes:
    """Protocol 0 STRING push."""
    return b"S'" + text.encode() + b"'\n"


def su(text: str) -> bytes:
    """SHORT_BINUNICODE push."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def global_reduce(module: str, name: str, arg: str = "true", proto: int = 0) -> bytes:
    """``GLOBAL module name`` called with one string argument (the classic payload)."""
    head = b"" if proto < 2 else b"\x80" + bytes([proto])
    return head + b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + s0(arg) + b"tR."


def stack_global(module: str, name: str, arg: str = "true", memoize: bool = True) -> bytes:
    """Protocol 4 ``STACK_GLOBAL`` with literal operands, then a call."""
    m = b"\x94" if memoize else b""
    return b"\x80\x04" + su(module) + m + su(name) + m + b"\x93" + m + su(arg) + b"\x85R."


def memo_confusion() -> bytes:
    """PUT at an explicit index mixed with MEMOIZE so that memo indices diverge from counts."""
    return (
        b"\x80\x04"
        + su("builtins")
        + b"q\x05"  # BINPUT 5 -> memo {5: builtins}
        + b"0"
        + su("os")
        + b"\x94"  # MEMOIZE -> memo[1] = os (len(memo) == 1)
        + b"0"
        + su("system")
        + b"\x94"  # memo[2] = system
        + b"0"
        + b"h\x01h\x02\x93"  # BINGET 1, BINGET 2, STACK_GLOBAL -> os.system
        + su("true")
        + b"\x85R."
    )


def computed_name() -> bytes:
    """The module name is the result of an allow-listed call: ``_codecs.encode('cbfvk','rot13')``."""
    return (
        b"\x80\x04"
        + b"c_codecs\nencode\n"
        + su("cbfvk")
        + su("rot13")
        + b"\x86R"
        + su("system")
        + b"\x93"
        + su("true")
        + b"\x85R."
    )


def inst(module: str = "os", name: str = "system") -> bytes:
    return b"(" + s0("true") + b"i" + module.encode() + b"\n" + name.encode() + b"\n."


def obj(module: str = "os", name: str = "system") -> bytes:
    return b"(c" + module.encode() + b"\n" + name.encode() + b"\n" + s0("true") + b"o."


def newobj(module: str = "os", name: str = "system") -> bytes:
    return (
        b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + s0("true") + b"\x85\x81."
    )


def newobj_ex(module: str = "os", name: str = "system") -> bytes:
    g = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    return b"\x80\x04" + g + su("true") + b"\x85}\x92."


def build_on_global() -> bytes:
    """BUILD sets an attribute of an imported class, which is then imported back."""
    return (
        b"\x80\x02ccollections\nOrderedDict\n"
        + b"N}"
        + s0("x")
        + b"ccollections\nOrderedDict\ns\x86b0"
        + b"ccollections\nOrderedDict.x\n)R."
    )


def ext_code(code: int = 1) -> bytes:
    return b"\x80\x02\x82" + bytes([code]) + b")R."


def nullifai(module: str = "os", name: str = "system") -> bytes:
    """A payload followed by an invalid opcode: the payload runs before the loader fails."""
    return global_reduce(module, name)[:-1] + b"0\xff\xfe garbage"


def after_stop() -> bytes:
    """A benign pickle followed by a malicious one."""
    return b"\x80\x02}q\x00." + global_reduce("os", "system", proto=2)


def dotted(module: str, name: str) -> bytes:
    return stack_global(module, name)


def getattr_chain() -> bytes:
    """``getattr(os_module, 'system')('true')``: an indirect call of a computed value."""
    return (
        b"\x80\x02cbuiltins\ngetattr\n"
        + b"cpathlib\nos\n"
        + s0("system")
        + b"\x86R"
        + s0("true")
        + b"\x85R."
    )


def reconstructor_computed() -> bytes:
    """``copyreg._reconstructor`` whose class is itself a call result."""
    return (
        b"\x80\x02ccopyreg\n_reconstructor\n"
        + b"c_codecs\nencode\n"
        + s0("x")
        + s0("rot13")
        + b"\x86R"
        + b"cbuiltins\nobject\nN\x87R."
    )


def nested_loads(inner: bytes) -> bytes:
    """``pickle.loads(<inner bytes>)``."""
    return b"\x80\x03cpickle\nloads\nB" + struct.pack("<I", len(inner)) + inner + b"\x85R."


def load_from_bytes(inner: bytes) -> bytes:
    """``torch.storage._load_from_bytes(<inner>)``: an allow-listed nested loader."""
    return (
        b"\x80\x03ctorch.storage\n_load_from_bytes\nB"
        + struct.pack("<I", len(inner))
        + inner
        + b"\x85R."
    )
