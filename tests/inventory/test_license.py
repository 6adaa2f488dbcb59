"""License detection: full texts, model cards, GGUF metadata and the files next to a model."""

from __future__ import annotations

import os
import threading
from functools import partial
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelward.inventory import license as lic
from modelward.inventory.license import (
    COMMERCIAL,
    NAMES,
    from_gguf_metadata,
    from_model_card,
    identify_text,
    near,
)
from modelward.models import License
from modelward.scan import ScanOptions, scan_file
from tests.workcount import Calls, assert_linear, lines

# ----------------------------------------------------------------------------- realistic excerpts
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   1. Definitions.

      "License" shall mean the terms and conditions for use, reproduction,
      and distribution as defined by Sections 1 through 9 of this document.
"""

MIT = """MIT License

Copyright (c) 2023 DeepSeek

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""

_AGREEMENT = (
    "\u201cAgreement\u201d means the terms and conditions for use, reproduction, distribution and "
    "modification of the Llama Materials set forth herein.\n"
)
LLAMA2 = (
    "LLAMA 2 COMMUNITY LICENSE AGREEMENT\t\nLlama 2 Version Release Date: July 18, 2023\n\n"
    + (_AGREEMENT.replace("\u201c", '"').replace("\u201d", '"'))
)
LLAMA3 = (
    "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\n\nMeta Llama 3 Version Release Date: April 18, 2024\n\n"
    + _AGREEMENT
)
LLAMA31 = (
    "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, 2024\n"
    + _AGREEMENT
)
LLAMA32 = (
    "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n\nLlama 3.2 Version Release Date: September 25, 2024\n\n"
    + _AGREEMENT
)
LLAMA33 = (
    "LLAMA 3.3 COMMUNITY LICENSE AGREEMENT\n\nLlama 3.3 Version Release Date: December 6, 2024\n"
    + _AGREEMENT
)
LLAMA4 = (
    "**LLAMA 4 COMMUNITY LICENSE AGREEMENT**\n\nLlama 4 Version Effective Date: April 5, 2025\n\n"
    + _AGREEMENT
)

GEMMA = """Gemma Terms of Use

Last modified: February 21, 2024

By using, reproducing, modifying, distributing, performing or displaying any portion or element of
Gemma, Model Derivatives including via any Hosted Service, (each as defined below) (collectively,
the "Gemma Services") or otherwise accepting the terms of this Agreement, you agree to be bound by
this Agreement.
"""


def _cc(title: str) -> str:
    return f"""{title} 4.0 International

=======================================================================

Creative Commons Corporation ("Creative Commons") is not a law firm and
does not provide legal services or legal advice. Distribution of
Creative Commons public licenses does not create a lawyer-client or
other relationship. Creative Commons makes its licenses and related
information available on an "as-is" basis.
"""


CC_BY = _cc("Attribution")
CC_BY_SA = _cc("Attribution-ShareAlike")
CC_BY_NC = _cc("Attribution-NonCommercial")
CC_BY_NC_SA = _cc("Attribution-NonCommercial-ShareAlike")
CC_BY_NC_ND = _cc("Attribution-NonCommercial-NoDerivatives")
CC_BY_NC_LEGALCODE_ONLY = """Creative Commons Attribution-NonCommercial 4.0 International Public
License

By exercising the Licensed Rights (defined below), You accept and agree
to be bound by the terms and conditions of this Creative Commons
Attribution-NonCommercial 4.0 International Public License ("Public
License").
"""

CREATIVEML = """Copyright (c) 2022 Robin Rombach and Patrick Esser and contributors

CreativeML Open RAIL-M
dated August 22, 2022

Section I: PREAMBLE

Multimodal generative models are being widely adopted and used, and have the potential to
transform the way artists, among other individuals, conceive and benefit from AI or ML
technologies as a tool for content creation.
"""

OPENRAIL_PP = """Copyright (c) 2023 Stability AI
CreativeML Open RAIL++-M License dated July 26, 2023

Section I: PREAMBLE

Multimodal generative models are being widely adopted and used, and have the potential to
transform the way artists, among other individuals, conceive and benefit from AI or ML
technologies as a tool for content creation.
"""

BIGSCIENCE_OPENRAIL = """BigScience Open RAIL-M License
dated August 18, 2022

Section I: PREAMBLE

This OpenRAIL-M License was created under BigScience, an open and collaborative research project
aimed at the responsible development and use of large multilingual datasets and language models.
"""

BLOOM_RAIL = """BigScience RAIL License v1.0
dated May 19, 2022

This is a license (the \u201cLicense\u201d) between you (\u201cYou\u201d) and the participants of
BigScience (\u201cLicensor\u201d). Whereas the Apache 2.0 license was applicable to resources used
to develop the Model, the licensing conditions have been modified for the access and distribution
of the Model. This has been done to further BigScience\u2019s aims of promoting not just
open-access to its artifacts, but also a responsible use of these artifacts. Therefore, this
Responsible AI License (RAIL) aims at having an open and permissive character while striving for
responsible use of the Model.
"""

BIGCODE = """BigCode Open RAIL-M v1 License Agreement

Section I: Preamble

This OpenRAIL-M License Agreement was created under BigCode, an open and collaborative research
project aimed at the responsible development and use of Large Language Models ("LLMs") for code
generation.
"""

OPENRAIL_GENERIC = """Open RAIL-M License

Section I: PREAMBLE

This Responsible AI License (RAIL) governs the use of the Model.

NOW THEREFORE, You and Licensor agree as follows:
...
Attachment A

Use Restrictions

You agree not to use the Model or Derivatives of the Model:
- In any way that violates any applicable national, federal, state, local or international law;
"""

MRL = """# Mistral AI Research License

If You want to use a Mistral Model, a Derivative or an Output for any purpose that is not expressly
authorized under this Agreement, You must request a license from Mistral AI, which Mistral AI may
grant to You in Mistral AI's sole discretion. To discuss such a license, please contact Mistral AI
via the website contact form: https://mistral.ai/contact/

## 1. Scope and acceptance
"""

MNPL = """# Mistral AI Non-Production License

## 1. Scope and acceptance

**1.1. Scope of the Agreement.** This Agreement applies to any use, modification, or Distribution
of any Mistral Model by You, regardless of the source You obtained a copy of such Mistral Model.
"""

_QWEN_BODY = (
    "By clicking to agree or by using or distributing any portion or element of the {m} Materials, "
    "you will be deemed to have recognized and accepted the content of this Agreement, which is "
    "effective immediately.\n"
)
QWEN = (
    "Qwen LICENSE AGREEMENT\n\nQwen LICENSE AGREEMENT Release Date: September 19, 2024\n\n"
    + _QWEN_BODY.format(m="Qwen")
)
QWEN_RESEARCH = (
    "Qwen RESEARCH LICENSE AGREEMENT\n\nQwen RESEARCH LICENSE AGREEMENT Release Date: "
    "September 19, 2024\n\n" + _QWEN_BODY.format(m="Qwen")
)
TONGYI = (
    "Tongyi Qianwen LICENSE AGREEMENT\n\nTongyi Qianwen Release Date: August 3, 2023\n\n"
    + _QWEN_BODY.format(m="Tongyi Qianwen")
)
TONGYI_RESEARCH = (
    "Tongyi Qianwen RESEARCH LICENSE AGREEMENT\n\nTongyi Qianwen Release Date: November 30, 2023\n\n"
    + _QWEN_BODY.format(m="Tongyi Qianwen")
)

DEEPSEEK = """DEEPSEEK LICENSE AGREEMENT

Version 1.0, 23 October 2023

Copyright (c) 2023 DeepSeek

Section I: PREAMBLE

Large generative models are being widely adopted and used, and have the potential to transform the
way individuals conceive and benefit from AI or ML technologies.
"""

NVIDIA = """NVIDIA Open Model License Agreement

Last Modified: April 28, 2025

This NVIDIA Open Model License Agreement (the "Agreement") is a legal agreement between the Legal
Entity You represent, or if no entity is identified, You and NVIDIA Corporation and its Affiliates
("NVIDIA") and governs Your use of the Models that NVIDIA provides to You under this Agreement.
NVIDIA and You are each a "party" and collectively the "parties."
"""

EXCERPTS = {
    "apache-2.0": APACHE,
    "mit": MIT,
    "llama2": LLAMA2,
    "llama3": LLAMA3,
    "llama3.1": LLAMA31,
    "llama3.2": LLAMA32,
    "llama3.3": LLAMA33,
    "llama4": LLAMA4,
    "gemma": GEMMA,
    "cc-by-4.0": CC_BY,
    "cc-by-sa-4.0": CC_BY_SA,
    "cc-by-nc-4.0": CC_BY_NC,
    "cc-by-nc-sa-4.0": CC_BY_NC_SA,
    "cc-by-nc-nd-4.0": CC_BY_NC_ND,
    "creativeml-openrail-m": CREATIVEML,
    "openrail++": OPENRAIL_PP,
    "bigscience-openrail-m": BIGSCIENCE_OPENRAIL,
    "bigscience-bloom-rail-1.0": BLOOM_RAIL,
    "bigcode-openrail-m": BIGCODE,
    "openrail": OPENRAIL_GENERIC,
    "mrl": MRL,
    "mnpl": MNPL,
    "qwen": QWEN,
    "qwen-research": QWEN_RESEARCH,
    "tongyi-qianwen": TONGYI,
    "tongyi-qianwen-research": TONGYI_RESEARCH,
    "deepseek": DEEPSEEK,
    "nvidia-open-model-license": NVIDIA,
}

GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The GNU General Public License is a free, copyleft license for
software and other kinds of works.
"""

BSD3 = """BSD 3-Clause License

Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met:
"""

X11 = MIT + (
    "\nExcept as contained in this notice, the name of the X Consortium shall not be used in "
    "advertising or otherwise to promote the sale, use or other dealings in this Software without "
    "prior written authorization from the X Consortium.\n"
)
MIT0 = MIT.replace(
    "The above copyright notice and this permission notice shall be included in all\n"
    "copies or substantial portions of the Software.\n",
    "",
)

NEAR_MISSES = {
    "readme mentions apache": (
        "# Tiny model\n\nThis model is released under the Apache 2.0 license. See the Apache "
        "License, Version 2.0 for details. Licensed under the Apache License, Version 2.0.\n"
    ),
    "gpl-3.0": GPL3,
    "bsd-3-clause": BSD3,
    "cc-by 3.0": 'Attribution 3.0 Unported\n\nCreative Commons Corporation ("Creative Commons") '
    "is not a law firm and does not provide legal services or legal advice.\n",
    "x11": X11,
    "mit-0": MIT0,
    "llama 1": "LLaMA LICENSE AGREEMENT\nThis License Agreement (as may be amended in accordance "
    "with this License Agreement, \u201cLicense\u201d), between you and Meta Platforms, Inc.\n",
    "llama notice only": "Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright "
    "\u00a9 Meta Platforms, Inc. All Rights Reserved.",
    "gemma mention": "Please read the Gemma Terms of Use before downloading.",
    "nvidia mention": "Licensed by NVIDIA Corporation under the NVIDIA Open Model License",
    "cc title only": "Licensed under Creative Commons Attribution-NonCommercial 4.0 International.",
    "falcon": "TII Falcon License\nVersion 1.0, December 2024\n\nThis license is based on the "
    "Apache License Version 2.0, January 2004. TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND "
    "DISTRIBUTION. Grant of Copyright License. Grant of Patent License.\n",
    "empty": "",
    "whitespace": " \n\t\r\n ",
}


# ----------------------------------------------------------------------------- full text
@pytest.mark.parametrize("ident", sorted(EXCERPTS))
def test_every_license_is_recognised_from_its_opening(ident: str) -> None:
    found = identify_text(EXCERPTS[ident], "LICENSE")
    assert found == License(ident, NAMES[ident], "LICENSE")
    assert ident in COMMERCIAL


@pytest.mark.parametrize("ident", sorted(EXCERPTS))
def test_recognition_survives_reflowing_case_and_quotes(ident: str) -> None:
    text = EXCERPTS[ident]
    mangled = " ".join(text.split()).upper().replace('"', "\u201c").replace("\n", "\r\n")
    found = identify_text("  ## " + mangled + "\n\n(end)", "ollama license layer")
    assert found is not None and found.id == ident


@pytest.mark.parametrize("name", sorted(NEAR_MISSES))
def test_near_misses_are_not_recognised(name: str) -> None:
    assert identify_text(NEAR_MISSES[name], "x") is None


def test_llama_versions_are_told_apart_by_their_body_too() -> None:
    # The notice paragraph and definitions of each version name only that version.
    for v, ident in (
        ("3.1", "llama3.1"),
        ("3.2", "llama3.2"),
        ("3.3", "llama3.3"),
        ("4", "llama4"),
    ):
        text = (
            f"LLAMA {v} COMMUNITY LICENSE AGREEMENT\n"
            f"\u201cDocumentation\u201d means the specifications, manuals and documentation "
            f"accompanying Llama {v} distributed by Meta.\n"
            f"\u201cLlama {v} is licensed under the Llama {v} Community License, Copyright \u00a9 Meta "
            "Platforms, Inc. All Rights Reserved.\u201d"
        )
        assert identify_text(text, "x") == License(ident, NAMES[ident], "x")


def test_llama_text_without_its_title_is_still_recognised() -> None:
    body = (
        "\u201cLlama 3.3\u201d means the foundational large language models and software and "
        "algorithms, including machine-learning model code, trained model weights, inference-enabling "
        "code, training-enabling code, fine-tuning enabling code and other elements of the foregoing "
        "distributed by Meta at https://www.llama.com/llama-downloads.\n"
        "\u201cLlama Materials\u201d means, collectively, Meta\u2019s proprietary Llama 3.3 and "
        "Documentation (and any portion or element thereof) made available under this Agreement.\n"
    )
    assert identify_text(body, "x").id == "llama3.3"  # type: ignore[union-attr]


def test_the_first_license_wins_when_notices_follow() -> None:
    text = APACHE + "\n\nTHIRD-PARTY NOTICES\n\nsome-lib\n\n" + MIT
    assert identify_text(text, "x") is not None
    assert identify_text(text, "x").id == "apache-2.0"  # type: ignore[union-attr]
    assert identify_text(MIT + "\n" + APACHE, "x").id == "mit"  # type: ignore[union-attr]


def test_apache_notice_boilerplate_is_a_declaration() -> None:
    notice = (
        'Licensed under the Apache License, Version 2.0 (the "License");\n'
        "you may not use this file except in compliance with the License.\n"
        "You may obtain a copy of the License at\n\n    http://www.apache.org/licenses/LICENSE-2.0\n"
    )
    assert identify_text(notice, "x").id == "apache-2.0"  # type: ignore[union-attr]


def test_only_the_first_256_kb_are_read() -> None:
    assert identify_text("x " * 200_000 + APACHE, "x") is None
    assert identify_text(APACHE + "x " * 2_000_000, "x").id == "apache-2.0"  # type: ignore[union-attr]


def test_adversarial_text_is_bounded_and_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    # every fingerprint's first words repeated, never completed
    unit = "llama 3 1 community license creative commons attribution open rail "
    evil = (unit * 5000)[:300_000]
    for _ in range(5):
        assert identify_text(evil, "x") is None
    # The Python work does not grow faster than the text (each lookup is one substring search) ...
    assert_linear(lambda t: identify_text(t, "x"), evil[:60_000], evil[:120_000], "identify_text")
    # ... and the searches see at most MAX_TEXT characters, however long the text.
    seen: list[int] = []
    real = lic.normalise
    monkeypatch.setattr(lic, "normalise", lambda t: seen.append(len(t)) or real(t))
    assert identify_text(evil * 20, "x") is None
    assert seen == [lic.MAX_TEXT]


@given(st.text(max_size=3000))
def test_random_text_never_raises(text: str) -> None:
    found = identify_text(text, "x")
    assert found is None or found.id in NAMES


@given(st.sampled_from(sorted(EXCERPTS)), st.integers(0, 10_000), st.text(max_size=50))
def test_mutated_licenses_never_raise(ident: str, at: int, junk: str) -> None:
    text = EXCERPTS[ident]
    at %= len(text) + 1
    found = identify_text(text[:at] + junk + text[at:], "x")
    assert found is None or found.id in NAMES


def test_tables_cover_every_recognised_license() -> None:
    from modelward.inventory.license_texts import FINGERPRINTS

    for fp in FINGERPRINTS:
        assert fp.id in NAMES and fp.id in COMMERCIAL
    assert COMMERCIAL["cc-by-nc-4.0"] is False and COMMERCIAL["apache-2.0"] is True
    assert COMMERCIAL["llama3.1"] is None and COMMERCIAL["mrl"] is False


# ----------------------------------------------------------------------------- model cards
def card(front: str, body: str = "\n# Model\n\nSome text.\n") -> str:
    return f"---\n{front}\n---\n{body}"


@pytest.mark.parametrize(
    ("front", "ident", "name"),
    [
        ("license: llama3.1", "llama3.1", "Llama 3.1 Community License"),
        ("license: Apache-2.0", "apache-2.0", "Apache License 2.0"),
        ('license: "cc-by-nc-4.0"', "cc-by-nc-4.0", NAMES["cc-by-nc-4.0"]),
        ("license: 'mit' # MIT, see LICENSE", "mit", "MIT License"),
        ("license: gemma # comment", "gemma", "Gemma Terms of Use"),
        ("license: bsd-3-clause-clear", "bsd-3-clause-clear", "bsd-3-clause-clear"),
        (
            "license: other\nlicense_name: mrl\nlicense_link: https://mistral.ai/licenses/MRL-0.1.md",
            "mrl",
            "Mistral AI Research License",
        ),
        ("license: other\nlicense_name: deepseek-license", "deepseek", NAMES["deepseek"]),
        ("license: other\nlicense_name: deepseek", "deepseek", NAMES["deepseek"]),
        ("license: other\nlicense_name: qwen-research", "qwen-research", NAMES["qwen-research"]),
        ("license: other\nlicense_name: tongyi-qianwen", "tongyi-qianwen", NAMES["tongyi-qianwen"]),
        ("license: other\nlicense_name: llama4", "llama4", NAMES["llama4"]),
        (
            "license: other\nlicense_name: nvidia-open-model-license\nlicense_link: >-\n  https://x",
            "nvidia-open-model-license",
            NAMES["nvidia-open-model-license"],
        ),
        (
            "license: other\nlicense_link: https://mistral.ai/licenses/MNPL-0.1.md",
            "mnpl",
            NAMES["mnpl"],
        ),
        ("license: other\nlicense_name: acme-model-license", "other", "acme-model-license"),
        ("license: other", "other", None),
        ("license: [apache-2.0, mit]", "apache-2.0", "Apache License 2.0 (also: mit)"),
        (
            "license:\n  - cc-by-nc-4.0\n  - mit",
            "cc-by-nc-4.0",
            f"{NAMES['cc-by-nc-4.0']} (also: mit)",
        ),
        ("license:\n- mit\nlanguage:\n- en", "mit", "MIT License"),
        ("license_name: qwen", "qwen", NAMES["qwen"]),
    ],
)
def test_model_card_front_matter(front: str, ident: str, name: str | None) -> None:
    text = card("language:\n- en\ntags:\n  - text-generation\n" + front + "\npipeline_tag: x")
    assert from_model_card(text) == License(ident, name, "model card")


@pytest.mark.parametrize(
    "text",
    [
        "# Model\n\nlicense: mit\n",  # no front matter
        "---\nlicense: mit\n# never closed\n",  # unterminated
        "\n---\nlicense: mit\n---\n",  # front matter must start the file
        card("language: en"),  # no license key
        card("license: unknown"),
        card("license: see LICENSE file"),  # free text
        card("license: !!python/object/apply:os.system ['true']"),  # a tag, never interpreted
        card("license: &a mit"),
        card("license: |\n  mit"),  # block scalar: not read
        card("license:\n  name: mit"),  # nested mapping
        card("  license: mit"),  # not top level
        card('license: "mit'),  # unterminated quote
        card("license: []"),
        "",
    ],
)
def test_model_card_edge_cases_give_none(text: str) -> None:
    assert from_model_card(text) is None


def test_model_card_with_bom_and_crlf() -> None:
    text = "\ufeff---\r\nlicense: gemma\r\nlicense_name: gemma-terms\r\n---\r\n# Gemma\r\n"
    assert from_model_card(text) == License("gemma", "Gemma Terms of Use", "model card")


def test_huge_model_cards_are_bounded() -> None:
    # license before a gigantic model-index: found; after the cap: not found; both bounded
    index = "model-index:\n" + "- name: x\n  results: []\n" * 200_000
    assert from_model_card(card("license: mit\n" + index)).id == "mit"  # type: ignore[union-attr]
    assert from_model_card(card(index + "license: mit")) is None
    assert from_model_card("---\n" + "a: b\n" * 2_000_000) is None
    # bounded: past the caps, a card twice as long costs exactly the same Python work
    shapes = [
        lambda n: card("license: mit\n" + "model-index:\n" + "- name: x\n  results: []\n" * n),
        lambda n: card("model-index:\n" + "- name: x\n  results: []\n" * n + "license: mit"),
        lambda n: "---\n" + "a: b\n" * (10 * n),
    ]
    for make in shapes:
        once, twice = make(100_000), make(200_000)
        from_model_card(once)
        assert lines(partial(from_model_card, once)) == lines(partial(from_model_card, twice))


@given(st.text(max_size=2000))
def test_random_model_cards_never_raise(text: str) -> None:
    from_model_card(text)
    from_model_card("---\n" + text)
    from_model_card("---\nlicense: " + text + "\n---\n")


@given(
    st.lists(
        st.sampled_from(
            [
                "license:",
                "license: mit",
                "- a",
                "  - b",
                "  x: y",
                "license_name: qwen",
                "---",
                "#",
                "'",
                "[",
            ]
        ),
        max_size=30,
    )
)
def test_random_front_matter_lines_never_raise(lines: list[str]) -> None:
    found = from_model_card("---\n" + "\n".join(lines) + "\n---\n")
    assert found is None or isinstance(found, License)


# ----------------------------------------------------------------------------- GGUF metadata
def write_gguf(
    path: Path, license_id: str | None, name: str | None = None, link: str | None = None
) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Tiny")
    w.add_block_count(1)
    if license_id is not None:
        w.add_license(license_id)
    if name is not None:
        w.add_license_name(name)
    if link is not None:
        w.add_license_link(link)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    ("license_id", "name", "link", "expected"),
    [
        ("llama3.1", None, None, License("llama3.1", NAMES["llama3.1"], "gguf metadata")),
        ("apache-2.0", None, None, License("apache-2.0", NAMES["apache-2.0"], "gguf metadata")),
        (
            "other",
            "mrl",
            "https://mistral.ai/licenses/MRL-0.1.md",
            License("mrl", NAMES["mrl"], "gguf metadata"),
        ),
        ("other", "my-license", None, License("other", "my-license", "gguf metadata")),
        (
            "cc-by-nc-4.0,mit",
            None,
            None,
            License("cc-by-nc-4.0", f"{NAMES['cc-by-nc-4.0']} (also: mit)", "gguf metadata"),
        ),
        (None, None, None, None),
    ],
)
def test_license_from_a_real_gguf_file(
    tmp_path: Path,
    license_id: str | None,
    name: str | None,
    link: str | None,
    expected: License | None,
) -> None:
    path = write_gguf(tmp_path / "m.gguf", license_id, name, link)
    rep = scan_file(str(path), path.name, ScanOptions(hash=False))
    assert rep.format == "gguf"
    assert from_gguf_metadata(rep.metadata) == expected


@pytest.mark.parametrize(
    ("md", "ident"),
    [
        ({"license": {"id": "Apache-2.0"}}, "apache-2.0"),
        ({"license": {"id": "llama3"}}, "llama3"),
        ({"license": {"id": "Llama 3.2 Community License"}}, "llama3.2"),
        ({"license": {"id": "CC-BY-NC-SA-4.0"}}, "cc-by-nc-sa-4.0"),
        ({"license": {"id": "other", "name": "Tongyi Qianwen"}}, "tongyi-qianwen"),
        ({"license": {"id": "other", "link": "https://ai.google.dev/gemma/terms"}}, "gemma"),
        ({"license": "mit"}, "mit"),
        ({"general.license": "openrail++"}, "openrail++"),
        ({"license": {"id": ["llama2", "other"]}}, "llama2"),
        ({"license": {"id": LLAMA31 * 3}}, "llama3.1"),  # a whole text in general.license
    ],
)
def test_gguf_metadata_values(md: dict[str, Any], ident: str) -> None:
    found = from_gguf_metadata(md)
    assert found is not None and found.id == ident and found.evidence == "gguf metadata"


@pytest.mark.parametrize(
    "md",
    [
        {},
        {"license": None},
        {"license": 5},
        {"license": {"id": 5, "name": ["x"]}},
        {"license": {"id": "unknown"}},
        {"license": {"id": "Apache"}},  # no version: not guessed
        {"license": {"id": ""}},
        {"license": {"id": "x" * 5000}},
    ],
)
def test_gguf_metadata_without_a_known_license(md: dict[str, Any]) -> None:
    assert from_gguf_metadata(md) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["license", "general.license", "x"]), _JSON, max_size=3))
def test_random_gguf_metadata_never_raises(md: dict[str, Any]) -> None:
    found = from_gguf_metadata(md)
    assert found is None or isinstance(found, License)


@given(_JSON)
def test_random_license_dicts_never_raise(value: Any) -> None:
    from_gguf_metadata({"license": value})
    from_gguf_metadata({"license": {"id": value, "name": value, "link": value}})


# ----------------------------------------------------------------------------- files nearby
def hf_snapshot(root: Path, license_text: str | None, readme: str | None) -> Path:
    """A Hugging Face cache repo whose snapshot files are relative links into ``blobs/``."""
    from safetensors.numpy import save_file

    repo = root / "models--org--tiny"
    blobs, snap = repo / "blobs", repo / "snapshots" / ("a" * 40)
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    files = {"LICENSE": license_text, "README.md": readme}
    for i, (name, text) in enumerate(files.items()):
        if text is not None:
            (blobs / f"{i:040x}").write_text(text, encoding="utf-8")
            (snap / name).symlink_to(f"../../blobs/{i:040x}")
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(blobs / ("b" * 64)))
    (snap / "model.safetensors").symlink_to(f"../../blobs/{'b' * 64}")
    return snap / "model.safetensors"


def test_license_text_next_to_a_hf_snapshot(tmp_path: Path) -> None:
    model = hf_snapshot(tmp_path, LLAMA32, card("license: llama3.2"))
    found = near(model)
    assert found == License("llama3.2", NAMES["llama3.2"], str(model.parent / "LICENSE"))


def test_model_card_when_no_license_file(tmp_path: Path) -> None:
    model = hf_snapshot(tmp_path, None, card("license: other\nlicense_name: qwen"))
    assert near(model) == License("qwen", NAMES["qwen"], f"model card {model.parent / 'README.md'}")


def test_model_card_when_the_license_file_is_not_recognised(tmp_path: Path) -> None:
    model = hf_snapshot(tmp_path, GPL3, card("license: gemma"))
    found = near(model)
    assert found is not None and found.id == "gemma" and found.evidence.startswith("model card ")  # type: ignore[union-attr]


def test_license_in_parent_folders_up_to_stop(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    model = deep / "m.gguf"
    model.write_bytes(b"GGUF")
    (tmp_path / "a" / "LICENCE.txt").write_text(CC_BY_NC)
    assert near(model).id == "cc-by-nc-4.0"  # type: ignore[union-attr]
    assert near(model, stop=tmp_path / "a" / "b") is None
    assert near(model, stop=tmp_path / "a").id == "cc-by-nc-4.0"  # type: ignore[union-attr]
    assert near(model, stop=tmp_path / "elsewhere") is None
    (tmp_path / "a" / "LICENCE.txt").unlink()
    (tmp_path / "LICENSE").write_text(MIT)  # three levels above: too far
    assert near(model) is None


def test_exact_license_names_are_read_first(tmp_path: Path) -> None:
    (tmp_path / "LICENSE-THIRD-PARTY").write_text(MIT)
    (tmp_path / "license.md").write_text(GEMMA)
    (tmp_path / "COPYING").write_text(GPL3)
    assert near(tmp_path / "m.bin").id == "gemma"  # type: ignore[union-attr]


def test_hostile_files_named_license(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "LICENSE").mkdir()
    os.mkfifo(tmp_path / "LICENSE.txt")  # would block a plain open()
    (tmp_path / "LICENSE.md").symlink_to(tmp_path / "missing")
    (tmp_path / "LICENCE").symlink_to(tmp_path / "LICENCE")  # a loop
    (tmp_path / "README.md").symlink_to("/dev/zero")
    calls = Calls(monkeypatch)
    calls.patch(os, "read")
    found: list[License | None] = []
    # A hang guard, not a speed target: a blocking open of the FIFO would never return.
    worker = threading.Thread(target=lambda: found.append(near(tmp_path / "m.gguf")), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "near() blocked on a hostile LICENSE file"
    assert found == [None]
    assert calls["read"] == 0  # neither the FIFO nor /dev/zero was read


def test_utf16_and_binary_license_files(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_bytes(b"\x00\xff" * 1000)
    (tmp_path / "LICENSE.txt").write_bytes(APACHE.encode("utf-16"))
    assert near(tmp_path / "m.gguf").id == "apache-2.0"  # type: ignore[union-attr]


def test_a_changed_license_file_is_read_again(tmp_path: Path) -> None:
    lic_file = tmp_path / "LICENSE"
    lic_file.write_text(MIT)
    assert near(tmp_path / "m.gguf").id == "mit"  # type: ignore[union-attr]
    lic_file.write_text(APACHE)
    assert near(tmp_path / "m.gguf").id == "apache-2.0"  # type: ignore[union-attr]


def test_missing_paths_and_crowded_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert near(tmp_path / "nope" / "m.gguf") is None
    assert near(Path("\0bad")) is None
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    for i in range(lic.MAX_DIR_ENTRIES + 50):
        (crowded / f"f{i}").touch()
    pulled: dict[str, list[int]] = {}
    real = os.scandir

    class Counted:  # an os.scandir that records how many entries each listing handed out
        def __init__(self, path: Any) -> None:
            self._it = real(path)
            self._n = pulled.setdefault(os.fspath(path), [])
            self._n.append(0)

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: object) -> None:
            self._it.close()

        def __iter__(self) -> Counted:
            return self

        def __next__(self) -> os.DirEntry[str]:
            entry = next(self._it)
            self._n[-1] += 1
            return entry

    monkeypatch.setattr(os, "scandir", Counted)
    for _ in range(50):
        assert near(crowded / "f1") is None
    assert len(pulled[str(crowded)]) == 1  # listed once, then cached by the folder's mtime
    assert max(n for counts in pulled.values() for n in counts) <= lic.MAX_DIR_ENTRIES + 1
