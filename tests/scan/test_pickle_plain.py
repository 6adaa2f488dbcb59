"""The data-only fast path: a stream it clears can import and call nothing (pickletools as oracle)."""

from __future__ import annotations

import io
import pickle
import pickletools
import re
from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.scan.pickle.plain import is_plain
from modelward.scan.pickle.vm import float_run_end
from tests.scan import pickle_samples

# Every opcode through which loading can import, call or reach the loader's hooks.
ACTIVE = {
    "GLOBAL",
    "STACK_GLOBAL",
    "INST",
    "OBJ",
    "NEWOBJ",
    "NEWOBJ_EX",
    "REDUCE",
    "BUILD",
    "EXT1",
    "EXT2",
    "EXT4",
    "PERSID",
    "BINPERSID",
    "NEXT_BUFFER",
    "READONLY_BUFFER",
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
plain_data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=12), inner, max_size=6)
        | st.tuples(inner, inner)
    ),
    max_leaves=40,
)


def opcodes(data: bytes) -> list[str]:
    return [op.name for op, _, _ in pickletools.genops(io.BytesIO(data))]


@given(plain_data, st.integers(2, 5))
def test_plain_data_is_cleared_and_really_is_plain(obj: object, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    if is_plain(data, 0, len(data)):
        assert not ACTIVE & set(opcodes(data))


@given(plain_data, st.integers(2, 5), st.data())
def test_a_cleared_mutant_tokenises_the_same_for_pickletools(
    obj: object, protocol: int, data: st.DataObject
) -> None:
    raw = bytearray(pickle.dumps(obj, protocol=protocol))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    buf = bytes(raw)
    if is_plain(buf, 0, len(buf)):
        try:
            ops = opcodes(buf)  # must parse to the end exactly as the fast path did
        except UnicodeDecodeError:
            return  # the loader fails on that string too; no opcode of the stream is active
        assert ops[-1] == "STOP" and not ACTIVE & set(ops)


@given(st.binary(max_size=200))
def test_random_bytes_are_cleared_only_when_plain(tail: bytes) -> None:
    buf = b"\x80\x04" + tail
    if is_plain(buf, 0, len(buf)):
        assert not ACTIVE & set(opcodes(buf))


def test_realistic_plain_pickles_are_cleared() -> None:
    vocab = {f"tok{i}": i for i in range(3000)}
    config = {"model": {"hidden": 4096, "act": "silu", "eps": 1e-5, "rope": None, "tie": True}}
    for protocol in (2, 3, 4, 5):
        blobs = [b"\x00" * 30] * 10  # protocol 2 pickles bytes via _codecs.encode: an import
        for obj in (vocab, config, [1.5] * 1000, *([blobs] if protocol >= 3 else [])):
            data = pickle.dumps(obj, protocol=protocol)
            assert is_plain(data, 0, len(data)), (protocol, type(obj))


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_anything_that_imports_is_not_cleared(protocol: int) -> None:
    data = pickle.dumps(OrderedDict(a=1), protocol=protocol)
    assert not is_plain(data, 0, len(data))


def test_no_malicious_sample_is_cleared() -> None:
    samples = [
        v for k, v in vars(pickle_samples).items() if isinstance(v, bytes) and not k.startswith("_")
    ]
    builders = [v for k, v in vars(pickle_samples).items() if callable(v) and not k.startswith("_")]
    for b in builders:
        try:
            out = b()
        except TypeError:
            continue
        if isinstance(out, bytes):
            samples.append(out)
    ps = pickle_samples
    samples += [
        ps.global_reduce("os", "system", proto=2),
        ps.stack_global("os", "system"),
        ps.stack_global("os", "system", memoize=False),
        ps.dotted("pathlib", "os.system"),
        ps.nested_loads(ps.stack_global("os", "system")),
        ps.load_from_bytes(ps.stack_global("os", "system")),
    ]
    assert len(samples) > 10
    for data in samples:
        assert not is_plain(data, 0, len(data)), data[:60]


def test_data_after_stop_and_long_strings_take_the_full_walk() -> None:
    one = pickle.dumps({"a": 1}, protocol=4)
    assert not is_plain(one + one, 0, 2 * len(one))
    long = pickle.dumps("x" * 300, protocol=4)
    assert not is_plain(long, 0, len(long))


FLOAT_RUN = re.compile(rb"(?:G[\x00-\xff]{8})+(?=[eu])")


@given(
    st.lists(
        st.sampled_from([b"G" + bytes(8), b"G\x01\x02", b"e", b"u", b"K\x05", b"G"]), max_size=40
    ),
    st.integers(0, 3),
)
def test_float_run_stride_equals_the_regex(parts: list[bytes], start: int) -> None:
    buf = b"".join(parts)
    start = min(start, len(buf))
    m = FLOAT_RUN.match(buf, start)
    assert float_run_end(buf, start, len(buf)) == (m.end() if m else -1)


def test_float_run_over_a_batch_boundary() -> None:
    buf = b"(" + (b"G" + b"\x47" * 8) * 3000 + b"e."  # floats whose bytes are all G
    assert float_run_end(buf, 1, len(buf)) == len(buf) - 2
