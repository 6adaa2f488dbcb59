"""The lazy registry: its cheap checks are supersets of the detectors' own, so laziness never
changes which detector a file gets."""

from __future__ import annotations

import gzip
import pickle
import random
import struct
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.scan import registry
from modelward.scan.detector import HEAD_SIZE, Detector
from modelward.scan.source import BytesSource, Source


def eager(src: Source) -> Detector | None:
    head = src.head(HEAD_SIZE)
    return next((d for d in registry.load() if d.matches(head, src)), None)


def samples() -> list[bytes]:
    out = [b"", b"GGUF\x03\x00\x00\x00" + bytes(40), b"\x93NUMPY\x01\x00" + bytes(60)]
    out.append(pickle.dumps({"a": [1.0] * 10}, protocol=4))
    out.append(pickle.dumps({"a": 1}, protocol=0))
    out.append(gzip.compress(pickle.dumps({"a": 1}), mtime=0))
    header = b'{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    out.append(struct.pack("<Q", len(header)) + header + bytes(4))
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
    out.append(buf.getvalue())
    out.append(b"MZqFpD" + bytes(100) + buf.getvalue())
    out.append(b'{"chat_template": "{{ x }}"}')
    out.append(b"\x89HDF\r\n\x1a\n" + bytes(100))
    out.append(bytes(512) + b"\x89HDF\r\n\x1a\n" + bytes(100))
    out.append(bytes(4) + b"TFL3" + bytes(100))
    out.append(b"\x08\x07\x12\x07pytorch" + bytes(20))
    out.append(random.Random(0).randbytes(5000))
    return out


def test_entries_describe_exactly_the_registered_detectors() -> None:
    registered = {
        (type(d).__module__.rsplit(".", 1)[-1], type(d).__name__, d.priority)
        for d in registry.load()
    }
    listed = {(e.module, e.detector, e.priority) for e in registry.ENTRIES}
    assert listed == registered
    assert [e.priority for e in registry.ENTRIES] == sorted(e.priority for e in registry.ENTRIES)


def check(data: bytes) -> None:
    src = BytesSource(data)
    head = src.head(HEAD_SIZE)
    by_name = {type(d).__name__: d for d in registry.load()}
    for entry in registry.ENTRIES:
        if by_name[entry.detector].matches(head, src):
            assert entry.may_match(head, src), entry
    assert registry.identify(src) is eager(src)


@pytest.mark.parametrize("data", samples(), ids=lambda d: repr(d[:10]))
def test_cheap_checks_are_supersets_and_identify_agrees(data: bytes) -> None:
    check(data)


@given(st.binary(max_size=600))
def test_identify_agrees_with_the_eager_registry_on_any_bytes(data: bytes) -> None:
    check(data)


@given(st.sampled_from(samples()), st.binary(max_size=64))
def test_identify_agrees_on_mutated_magic(data: bytes, noise: bytes) -> None:
    cut = len(noise) % (len(data) + 1)
    check(data[:cut] + noise + data[cut + len(noise) :])


def test_scanning_a_pickle_imports_no_unrelated_analyser(tmp_path: object) -> None:
    code = (
        "import pickle, sys, tempfile, os\n"
        "from modelward.scan import scan\n"
        "d = tempfile.mkdtemp(); p = os.path.join(d, 'm.pkl')\n"
        "open(p, 'wb').write(pickle.dumps({'w': [1.0] * 10}, protocol=4))\n"
        "scan([p])\n"
        "bad = [m for m in sys.modules if m.startswith(('modelward.scan.formats.keras', "
        "'modelward.scan.formats.onnx', 'modelward.scan.templates', 'jinja2', 'numpy', 'h5py'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
