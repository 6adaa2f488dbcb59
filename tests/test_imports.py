"""Start-up cost guard: the CLI root (and so `scan` / `inventory`) never imports heavy libraries.

Timing belongs in benchmarks; this checks the cause of slow starts instead: which modules get
imported. FastAPI + SQLAlchemy + pydantic alone cost ~0.9 s on this machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "httpx",
    "boto3",
    "huggingface_hub",
    "model_signing",
    "cryptography",
    "numpy",
    "torch",
    "uvicorn",
)


def _imported(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


def test_cli_root_imports_no_heavy_library() -> None:
    loaded = _imported("import modelward.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_scan_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\nfrom modelward.cli import main\n"
        "try:\n    main(['scan', '--help'])\nexcept SystemExit:\n    pass"
    )
    loaded = _imported(code)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
