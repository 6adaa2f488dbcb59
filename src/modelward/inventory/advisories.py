"""A small bundled table of known vulnerabilities of local runtimes and inference libraries.

Each :class:`Advisory` names a product (a runtime name such as ``ollama`` or a normalised Python
distribution name such as ``llama-cpp-python``), the affected range (``below``: exclusive upper
bound, ``through``: inclusive one), the CVE, a severity and a title. Versions are compared with
``packaging.version`` when it is installed and with :func:`parse_version` (a small PEP 440 subset)
otherwise; an unparsable version matches nothing (an advisory is never guessed).

Sources: ``shared/research/endpoint.md`` section 5 (Wiz, Oligo, Talos, GitHub advisories, NVD).
llama.cpp versions are build numbers (``b8146`` or ``8146``); its later semantic versions
(``0.4.1``) postdate every llama.cpp advisory here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelward.models import Severity


@dataclass(frozen=True, slots=True)
class Advisory:
    """A known vulnerability of ``product`` in versions ``< below`` (or ``<= through``)."""

    product: str
    cve: str
    severity: Severity
    title: str
    below: str | None = None
    through: str | None = None

    @property
    def affected(self) -> str:
        return f"< {self.below}" if self.below else f"<= {self.through}"


C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM

ADVISORIES: tuple[Advisory, ...] = (
    # Ollama (server); versions as /api/version and the build's version.Version report them
    Advisory("ollama", "CVE-2024-28224", H, "DNS rebinding gives a web page the full API", "0.1.29"),
    Advisory(
        "ollama", "CVE-2024-37032", C,
        "Probllama: manifest digest path traversal, arbitrary file write and code execution",
        "0.1.34",
    ),
    Advisory("ollama", "CVE-2024-39721", H, "Denial of service through /api/create", "0.1.34"),
    Advisory("ollama", "CVE-2024-39720", H, "Out-of-bounds read crashes the server", "0.1.46"),
    Advisory(
        "ollama", "CVE-2024-39722", M, "File existence disclosure through /api/push traversal",
        "0.1.46",
    ),
    Advisory("ollama", "CVE-2024-45436", H, "Zip slip when importing a model archive", "0.1.47"),
    Advisory(
        "ollama", "CVE-2026-7482", C,
        "Bleeding Llama: GGUF loader out-of-bounds read leaks memory (keys, other users' prompts)",
        "0.17.1",
    ),
    # llama.cpp (build numbers)
    Advisory(
        "llama.cpp", "CVE-2024-21802", C,
        "GGUF parser heap overflows (TALOS-2024-1912..1916, also CVE-2024-21825/-21836/-23496/"
        "-23605): code execution when a model is loaded; builds before the 2024-01-30 fix "
        "(bound approximate)",
        "2000",
    ),
    Advisory(
        "llama.cpp", "CVE-2026-27940", H,
        "GGUF loader integer overflows (also CVE-2025-49847, CVE-2025-52566, CVE-2025-53630)",
        "8146",
    ),
    # Python libraries
    Advisory(
        "llama-cpp-python", "CVE-2024-34359", C,
        "Llama Drama: a GGUF chat template runs code through Jinja2 when the model is loaded",
        "0.2.72",
    ),
    Advisory(
        "torch", "CVE-2025-32434", C,
        "torch.load(weights_only=True) can still execute code from a malicious checkpoint",
        "2.6.0",
    ),
)  # fmt: skip

BUILD_NUMBERED = frozenset({"llama.cpp"})
"""Products whose advisories give build numbers (``b8146``). llama.cpp moved to semantic
versions (``0.2.0``, 2026) after every fix listed here, so a dotted version matches none."""

_VERSION = re.compile(
    r"^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)"  # epoch, release
    r"(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d*))?"  # pre-release
    r"(?:(?:-(\d+))|(?:[-_.]?(?:post|rev|r)[-_.]?(\d*)))?"  # post-release
    r"(?:[-_.]?dev[-_.]?(\d*))?"  # dev release
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$",  # local version (+cu121): ignored
    re.IGNORECASE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
VersionKey = tuple[int, tuple[int, ...], tuple[int, int], int, int]


def parse_version(text: str) -> VersionKey | None:
    """A sortable key for a PEP 440 version (``v1.2.3``, ``2.5.1+cu121``, ``0.2.72rc1``), or None.

    ``b8146`` (a llama.cpp build) is read as ``8146``.
    """
    text = text.strip()
    if len(text) > 64:
        return None
    if re.fullmatch(r"[bB]\d+", text):
        text = text[1:]
    m = _VERSION.match(text)
    if m is None:
        return None
    epoch, release, pre_l, pre_n, post_a, post_b, dev = m.groups()
    rel = [int(x) for x in release.split(".")]
    while len(rel) > 1 and rel[-1] == 0:
        rel.pop()
    big = 1 << 62
    if pre_l is not None:
        pre = (_PRE_RANK[pre_l.lower()], int(pre_n or 0))
    elif dev is not None and post_a is None and post_b is None:
        pre = (-1, 0)  # 1.0.dev1 < 1.0a1
    else:
        pre = (3, 0)  # a final release sorts after its pre-releases
    post_s = post_a if post_a is not None else post_b
    post = -1 if post_s is None else int(post_s or 0)
    dev_n = big if dev is None else int(dev or 0)
    return (int(epoch or 0), tuple(rel), pre, post, dev_n)


def compare(a: str, b: str) -> int | None:
    """-1, 0 or 1 as version ``a`` is below, equal to or above ``b``; None when unparsable."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        pass
    else:
        try:
            va, vb = Version(_strip_build(a)), Version(_strip_build(b))
        except InvalidVersion:
            pass
        else:
            return (va > vb) - (va < vb)
    ka, kb = parse_version(a), parse_version(b)
    if ka is None or kb is None:
        return None
    return (ka > kb) - (ka < kb)


def _strip_build(text: str) -> str:
    text = text.strip()
    return text[1:] if re.fullmatch(r"[bB]\d+", text) else text


def affects(adv: Advisory, version: str) -> bool:
    """Whether ``version`` lies in the advisory's affected range (False when unparsable)."""
    if adv.below is not None:
        c = compare(version, adv.below)
        return c is not None and c < 0
    if adv.through is not None:
        c = compare(version, adv.through)
        return c is not None and c <= 0
    return False


def matching(product: str, version: str | None) -> list[Advisory]:
    """The advisories of ``product`` that ``version`` is affected by, worst first."""
    if not version:
        return []
    if product in BUILD_NUMBERED and not re.fullmatch(r"\s*[bB]?\d+\s*", version):
        return []  # a semantic version: a release after the build-number era and its fixes
    found = [a for a in ADVISORIES if a.product == product and affects(a, version)]
    return sorted(found, key=lambda a: (-a.severity, a.cve))
