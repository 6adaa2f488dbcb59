"""Which folders the agent watches: roots and store roots recursively, loose model folders alone."""

from __future__ import annotations

from pathlib import Path

from modelward.agent.runner import watch_folders


def test_watch_folders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ollama = tmp_path / "home" / ".ollama" / "models"
    hub = tmp_path / "home" / ".cache" / "huggingface" / "hub"
    loose = tmp_path / "home" / "Downloads" / "llama"
    for d in (
        root / "x",
        ollama / "blobs",
        ollama / "manifests" / "registry.ollama.ai" / "library" / "llama3",
        hub / "models--org--m" / "snapshots" / "abc",
        loose,
    ):
        d.mkdir(parents=True)
    doc = {
        "artifacts": [
            {"path": str(root / "x" / "m.safetensors")},
            {"path": str(ollama / "blobs" / ("sha256-" + "a" * 64))},
            {
                "path": str(
                    ollama / "manifests" / "registry.ollama.ai" / "library" / "llama3" / "8b"
                )
            },
            {"path": str(hub / "models--org--m" / "snapshots" / "abc" / "model.safetensors")},
            {"path": str(loose / "model.gguf")},
        ]
    }
    got = dict(watch_folders(doc, [root]))
    assert got == {
        root: True,  # an explicit root: everything below it
        ollama: True,
        hub: True,
        loose: False,  # the model's own folder
        loose.parent: False,  # where the next downloaded model folder appears
    }
