"""A revision whose files share bytes: each path is scanned under its own name.

The hub scans a folder of links to blobs, so identical files of a revision are one file on disk; a
pickle published both as ``a.pkl`` and as ``model.safetensors`` must still be a masquerade under
the second name, and so need an override to be approved.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from modelward.errors import ApprovalRefused
from tests.server.conftest import publish

PICKLE = pickle.dumps({"weights": [1.0, 2.0, 3.0]}, protocol=4)


def test_the_same_pickle_under_a_safetensors_name_needs_an_override(
    hub: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "rev"
    folder.mkdir()
    for name in ("a.pkl", "model.safetensors", "zz.pkl"):
        (folder / name).write_bytes(PICKLE)
    rev = publish(hub, "acme/twins", folder, approve=False)

    files = {f["path"]: f for f in rev.scan["files"]}
    assert sorted(files) == ["a.pkl", "model.safetensors", "zz.pkl"]
    masq = [(x["rule"], x["severity"]) for x in files["model.safetensors"]["findings"]]
    assert masq == [("format.masquerade", "high")]
    assert files["a.pkl"]["findings"] == [] and files["zz.pkl"]["findings"] == []
    assert rev.max_severity == "high", rev.scan["files"]

    with pytest.raises(ApprovalRefused, match="override"):
        hub.approve("acme/twins", rev.commit, "rita", "looks fine")
    approved = hub.approve("acme/twins", rev.commit, "rita", "known rename", override=True)
    assert approved.state == "approved"
