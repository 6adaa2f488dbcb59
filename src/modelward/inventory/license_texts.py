"""Model license data: names, commercial-use flags, id aliases and full-text fingerprints.

Fingerprint phrases are written as they appear in the license files; they are normalised with
the same function as the text they are matched against (lowercase, every run of characters other
than ``a-z``, ``0-9`` and ``+`` becomes one space), so punctuation, quotes, line breaks and
Markdown markup do not matter. ``+`` is kept so that "Open RAIL++-M" differs from "Open RAIL-M".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NON_WORD = re.compile(r"[^a-z0-9+]+")


def normalise(text: str) -> str:
    """Lowercase ``text`` and turn every run of non-word characters into one space (linear)."""
    return _NON_WORD.sub(" ", text.lower()).strip()


NAMES: dict[str, str] = {
    "apache-2.0": "Apache License 2.0",
    "mit": "MIT License",
    "llama2": "Llama 2 Community License",
    "llama3": "Meta Llama 3 Community License",
    "llama3.1": "Llama 3.1 Community License",
    "llama3.2": "Llama 3.2 Community License",
    "llama3.3": "Llama 3.3 Community License",
    "llama4": "Llama 4 Community License",
    "gemma": "Gemma Terms of Use",
    "cc-by-4.0": "Creative Commons Attribution 4.0 International",
    "cc-by-sa-4.0": "Creative Commons Attribution-ShareAlike 4.0 International",
    "cc-by-nc-4.0": "Creative Commons Attribution-NonCommercial 4.0 International",
    "cc-by-nc-sa-4.0": "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International",
    "cc-by-nc-nd-4.0": "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International",
    "openrail": "Open RAIL License",
    "bigscience-openrail-m": "BigScience Open RAIL-M License",
    "bigscience-bloom-rail-1.0": "BigScience RAIL License v1.0",
    "bigcode-openrail-m": "BigCode Open RAIL-M v1 License",
    "creativeml-openrail-m": "CreativeML Open RAIL-M License",
    "openrail++": "CreativeML Open RAIL++-M License",
    "mrl": "Mistral AI Research License",
    "mnpl": "Mistral AI Non-Production License",
    "qwen": "Qwen License Agreement",
    "qwen-research": "Qwen Research License Agreement",
    "tongyi-qianwen": "Tongyi Qianwen License Agreement",
    "tongyi-qianwen-research": "Tongyi Qianwen Research License Agreement",
    "deepseek": "DeepSeek License Agreement",
    "nvidia-open-model-license": "NVIDIA Open Model License",
    # declared on model cards and in GGUF metadata, not recognised from full text
    "bsd-2-clause": "BSD 2-Clause License",
    "bsd-3-clause": "BSD 3-Clause License",
    "cc0-1.0": "Creative Commons Zero v1.0 Universal",
    "gpl-3.0": "GNU General Public License v3.0",
    "agpl-3.0": "GNU Affero General Public License v3.0",
    "lgpl-3.0": "GNU Lesser General Public License v3.0",
    "mpl-2.0": "Mozilla Public License 2.0",
    "unlicense": "The Unlicense",
    "openmdw-1.0": "OpenMDW License 1.0",
    "falcon-llm-license": "TII Falcon License",
    "fair-noncommercial-research-license": "FAIR Noncommercial Research License",
    "deepfloyd-if-license": "DeepFloyd IF License",
}
"""Human name of each license id this module can return."""

_CONDITIONAL = None
COMMERCIAL: dict[str, bool | None] = {
    "apache-2.0": True,
    "mit": True,
    "llama2": _CONDITIONAL,  # 700M monthly active users cap
    "llama3": _CONDITIONAL,
    "llama3.1": _CONDITIONAL,
    "llama3.2": _CONDITIONAL,  # and no multimodal rights for EU-based licensees
    "llama3.3": _CONDITIONAL,
    "llama4": _CONDITIONAL,
    "gemma": True,  # subject to the Prohibited Use Policy
    "cc-by-4.0": True,
    "cc-by-sa-4.0": True,
    "cc-by-nc-4.0": False,
    "cc-by-nc-sa-4.0": False,
    "cc-by-nc-nd-4.0": False,
    "openrail": True,  # subject to the Attachment A use restrictions
    "bigscience-openrail-m": True,
    "bigscience-bloom-rail-1.0": True,
    "bigcode-openrail-m": True,
    "creativeml-openrail-m": True,
    "openrail++": True,
    "mrl": False,  # research and personal use; commercial license sold separately
    "mnpl": False,
    "qwen": _CONDITIONAL,  # 100M monthly active users cap
    "qwen-research": False,
    "tongyi-qianwen": _CONDITIONAL,  # 100M monthly active users cap
    "tongyi-qianwen-research": False,
    "deepseek": True,  # subject to the Attachment A use restrictions
    "nvidia-open-model-license": True,
    "bsd-2-clause": True,
    "bsd-3-clause": True,
    "cc0-1.0": True,
    "gpl-3.0": True,
    "agpl-3.0": True,
    "lgpl-3.0": True,
    "mpl-2.0": True,
    "unlicense": True,
    "openmdw-1.0": True,
    "falcon-llm-license": _CONDITIONAL,
    "fair-noncommercial-research-license": False,
    "deepfloyd-if-license": False,
}
"""Whether commercial use is allowed: True, False, or None when conditional (user caps ...)."""

HF_IDS: frozenset[str] = frozenset(
    """apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear
    c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0
    cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0
    cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl
    ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
    lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0
    odc-by odbl openmdw-1.0 openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr
    deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2
    llama3.3 llama4 gemma other unknown""".split()  # noqa: SIM905
)
"""Hugging Face's license identifiers (the ``license:`` values its model cards accept)."""


def compact(value: str) -> str:
    """``value`` lowercased with everything but ``a-z``, ``0-9`` and ``+`` removed."""
    return _NON_WORD.sub("", value.lower())


_EXTRA_ALIASES = {
    "apache2": "apache-2.0",
    "apachev2": "apache-2.0",
    "apachelicense2": "apache-2.0",
    "apachelicense20": "apache-2.0",
    "apachelicenseversion20": "apache-2.0",
    "mitlicense": "mit",
    "expat": "mit",
    "llama2communitylicense": "llama2",
    "llama2communitylicenseagreement": "llama2",
    "metallama3": "llama3",
    "llama3communitylicense": "llama3",
    "metallama3communitylicenseagreement": "llama3",
    "llama31communitylicenseagreement": "llama3.1",
    "llama32communitylicenseagreement": "llama3.2",
    "llama33communitylicenseagreement": "llama3.3",
    "llama4communitylicenseagreement": "llama4",
    "gemmatermsofuse": "gemma",
    "mistralresearchlicense": "mrl",
    "mistralairesearchlicense": "mrl",
    "mrl01": "mrl",
    "mistralainonproductionlicense": "mnpl",
    "mnpl01": "mnpl",
    "qwenlicense": "qwen",
    "qwenlicenseagreement": "qwen",
    "qwenresearchlicense": "qwen-research",
    "qwenresearchlicenseagreement": "qwen-research",
    "tongyiqianwenlicense": "tongyi-qianwen",
    "tongyiqianwenlicenseagreement": "tongyi-qianwen",
    "tongyiqianwenresearchlicense": "tongyi-qianwen-research",
    "tongyiqianwenresearchlicenseagreement": "tongyi-qianwen-research",
    "deepseeklicense": "deepseek",
    "deepseeklicenseagreement": "deepseek",
    "deepseekla": "deepseek",
    "nvidiaopenmodel": "nvidia-open-model-license",
    "nvidiaopenmodellicenseagreement": "nvidia-open-model-license",
    "falcon": "falcon-llm-license",
    "tiifalconlicense": "falcon-llm-license",
}


def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for ident in HF_IDS:
        out[compact(ident)] = ident
    for ident, name in NAMES.items():
        out[compact(ident)] = ident
        out.setdefault(compact(name), ident)
    out.update(_EXTRA_ALIASES)
    return out


ALIASES: dict[str, str] = _aliases()
"""Compacted spellings (``compact()``) of ids, SPDX ids and names -> license id."""

LINKS: dict[str, str] = {
    "mistral.ai/licenses/mrl-0.1.md": "mrl",
    "mistral.ai/licenses/mnpl-0.1.md": "mnpl",
    "ai.google.dev/gemma/terms": "gemma",
    "www.nvidia.com/en-us/agreements/enterprise-software/nvidia-open-model-license": "nvidia-open-model-license",
    "www.apache.org/licenses/license-2.0": "apache-2.0",
    "creativecommons.org/licenses/by/4.0": "cc-by-4.0",
    "creativecommons.org/licenses/by-sa/4.0": "cc-by-sa-4.0",
    "creativecommons.org/licenses/by-nc/4.0": "cc-by-nc-4.0",
    "creativecommons.org/licenses/by-nc-sa/4.0": "cc-by-nc-sa-4.0",
    "creativecommons.org/licenses/by-nc-nd/4.0": "cc-by-nc-nd-4.0",
}
"""Well-known license URLs (scheme, trailing ``/`` and ``.html`` removed, lowercase) -> id."""


# ----------------------------------------------------------------------------- fingerprints
@dataclass(frozen=True, slots=True)
class Fingerprint:
    """How one license's full text is recognised.

    At least one ``anchors`` phrase (title lines, or a sentence that names the license and
    nothing else does) and every ``require`` phrase must occur, and
    at least ``need`` distinct phrases of ``anchors`` + ``require`` + ``support`` in all; no
    ``exclude`` phrase may occur. A ``fallback`` fingerprint is tried only when no other matched.
    """

    id: str
    anchors: tuple[str, ...]
    support: tuple[str, ...] = ()
    need: int = 2
    require: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    fallback: bool = False

    def normalised(self) -> Fingerprint:
        def n(xs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(f" {normalise(x)} " for x in xs)

        return Fingerprint(
            self.id,
            n(self.anchors),
            n(self.support),
            self.need,
            n(self.require),
            n(self.exclude),
            self.fallback,
        )


_LLAMA = ('"Llama Materials" means, collectively', "700 million monthly active users")
_CC = (
    'Creative Commons Corporation ("Creative Commons") is not a law firm',
    "does not provide legal services or legal advice",
    "Using Creative Commons Public Licenses",
    "By exercising the Licensed Rights (defined below), You accept and agree to be bound",
    "Licensed Rights",
    "Adapted Material",
)
_RAIL = (
    "Section I: PREAMBLE",
    "Attachment A",
    "Use Restrictions",
    "NOW THEREFORE, You and Licensor agree as follows",
    "You agree not to use the Model or Derivatives of the Model",
    "Responsible AI License",
)
_MISTRAL = (
    "If You want to use a Mistral Model, a Derivative or an Output for any purpose that is not "
    "expressly authorized under this Agreement",
    "You must request a license from Mistral AI",
    "Scope and acceptance",
    "This Agreement applies to any use, modification, or Distribution of any Mistral Model by You",
    "Mistral Model",
)
_QWEN = ("Alibaba Cloud", "100,000,000 monthly active users", "will be deemed to have recognized")

FINGERPRINTS: tuple[Fingerprint, ...] = tuple(
    f.normalised()
    for f in (
        Fingerprint(
            "apache-2.0",
            (
                "Apache License Version 2.0, January 2004",
                "Licensed under the Apache License, Version 2.0",
            ),
            (
                "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
                '"License" shall mean the terms and conditions for use, reproduction, and distribution',
                "Grant of Copyright License",
                "Grant of Patent License",
                "you may not use this file except in compliance with the License",
                "www.apache.org/licenses/LICENSE-2.0",
                "APPENDIX: How to apply the Apache License to your work",
            ),
            exclude=("TII Falcon", "Falcon LLM License"),
        ),
        Fingerprint(
            "mit",
            ("Permission is hereby granted, free of charge, to any person obtaining a copy",),
            (
                "MIT License",
                "to deal in the Software without restriction",
                "including without limitation the rights to use, copy, modify, merge, publish, "
                "distribute, sublicense, and/or sell copies of the Software",
                'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND',
            ),
            need=4,
            require=(
                "The above copyright notice and this permission notice shall be included in all "
                "copies or substantial portions of the Software",
            ),
            exclude=("shall not be used in advertising or otherwise to promote",),
        ),
        Fingerprint(
            "llama2",
            (
                "LLAMA 2 COMMUNITY LICENSE AGREEMENT",
                "Llama 2 Version Release Date",
                "Llama 2 is licensed under the LLAMA 2 Community License",
                '"Llama 2" means the foundational large language models',
            ),
            (
                "Meta's proprietary Llama 2 and Documentation",
                "documentation accompanying Llama 2 distributed by Meta",
                "to improve any other large language model (excluding Llama 2 or derivative works thereof)",
                *_LLAMA,
            ),
        ),
        Fingerprint(
            "llama3",
            (
                "META LLAMA 3 COMMUNITY LICENSE AGREEMENT",
                "Meta Llama 3 Version Release Date",
                "Meta Llama 3 is licensed under the Meta Llama 3 Community License",
                '"Meta Llama 3" means the foundational large language models',
            ),
            (
                "Built with Meta Llama 3",
                "documentation accompanying Meta Llama 3 distributed by Meta",
                *_LLAMA,
            ),
        ),
        *(
            Fingerprint(
                f"llama{v}",
                (
                    f"LLAMA {v} COMMUNITY LICENSE AGREEMENT",
                    f"Llama {v} Version {date} Date",
                    f"Llama {v} is licensed under the Llama {v} Community License",
                    f'"Llama {v}" means the foundational large language models',
                ),
                (
                    f"documentation accompanying Llama {v} distributed by Meta",
                    "Built with Llama",
                    *_LLAMA,
                ),
            )
            for v, date in (
                ("3.1", "Release"),
                ("3.2", "Release"),
                ("3.3", "Release"),
                ("4", "Effective"),
            )
        ),
        Fingerprint(
            "gemma",
            ("Gemma Terms of Use",),
            (
                "Gemma Services",
                "Model Derivatives",
                "Hosted Service",
                "ai.google.dev/gemma",
                "Gemma is provided under and subject to the Gemma Terms of Use",
                '"Google" means Google LLC',
                "Gemma Prohibited Use Policy",
            ),
            need=3,
        ),
        *(
            Fingerprint(
                ident,
                (
                    f"{title} 4.0 International",
                    f"Creative Commons {title} 4.0 International Public License",
                ),
                _CC,
                need=3,
            )
            for ident, title in (
                ("cc-by-4.0", "Attribution"),
                ("cc-by-sa-4.0", "Attribution-ShareAlike"),
                ("cc-by-nc-4.0", "Attribution-NonCommercial"),
                ("cc-by-nc-sa-4.0", "Attribution-NonCommercial-ShareAlike"),
                ("cc-by-nc-nd-4.0", "Attribution-NonCommercial-NoDerivatives"),
            )
        ),
        Fingerprint(
            "creativeml-openrail-m",
            ("CreativeML Open RAIL-M",),
            (
                "Multimodal generative models are being widely adopted and used",
                "This License governs the use of the model (and its derivatives) and is informed by "
                "the model card associated with the model",
                "Robin Rombach and Patrick Esser",
                *_RAIL,
            ),
        ),
        Fingerprint(
            "openrail++",
            ("CreativeML Open RAIL++-M License",),
            (
                "Multimodal generative models are being widely adopted and used",
                "This License governs the use of the model (and its derivatives) and is informed by "
                "the model card associated with the model",
                "Stability AI",
                *_RAIL,
            ),
        ),
        Fingerprint("bigscience-openrail-m", ("BigScience Open RAIL-M License",), _RAIL),
        Fingerprint(
            "bigscience-bloom-rail-1.0",
            ("BigScience RAIL License v1.0",),
            ("participants of BigScience", *_RAIL),
        ),
        Fingerprint("bigcode-openrail-m", ("BigCode Open RAIL-M v1 License Agreement",), _RAIL),
        Fingerprint("openrail", ("Open RAIL", "OpenRAIL"), _RAIL, need=4, fallback=True),
        Fingerprint(
            "mrl", ("Mistral AI Research License",), ("Research Purposes", *_MISTRAL), need=3
        ),
        Fingerprint(
            "mnpl",
            ("Mistral AI Non-Production License",),
            ("Non-Production Environment", *_MISTRAL),
            need=3,
        ),
        Fingerprint(
            "qwen",
            ("Qwen LICENSE AGREEMENT",),
            ("Qwen Materials", "Built with Qwen", "Improved using Qwen", *_QWEN),
        ),
        Fingerprint(
            "qwen-research",
            ("Qwen RESEARCH LICENSE AGREEMENT",),
            ("Qwen Materials", "Non-Commercial", "research or evaluation purposes", *_QWEN),
        ),
        Fingerprint(
            "tongyi-qianwen",
            ("Tongyi Qianwen LICENSE AGREEMENT", "Tongyi Qianwen Release Date"),
            ("Tongyi Qianwen Materials", *_QWEN),
        ),
        Fingerprint(
            "tongyi-qianwen-research",
            ("Tongyi Qianwen RESEARCH LICENSE AGREEMENT",),
            (
                "Tongyi Qianwen Materials",
                "Non-Commercial",
                "research or evaluation purposes",
                *_QWEN,
            ),
        ),
        Fingerprint(
            "deepseek",
            ("DEEPSEEK LICENSE AGREEMENT",),
            (
                "NOW THEREFORE, You and DeepSeek agree as follows",
                "Large generative models are being widely adopted and used",
                "use-based restrictions",
                *_RAIL,
            ),
        ),
        Fingerprint(
            "nvidia-open-model-license",
            ("NVIDIA Open Model License",),
            (
                "NVIDIA Corporation and its Affiliates",
                "governs Your use of the Models that NVIDIA provides to You under this Agreement",
                "Models are commercially usable",
                "You are free to create and distribute Derivative Models",
                "NVIDIA does not claim ownership to any outputs generated using the Models or "
                "Derivative Models",
                "Licensed by NVIDIA Corporation under the NVIDIA Open Model License",
            ),
            need=3,
        ),
    )
)
"""Every license recognised from its full text, in no particular order."""
