"""Stage ids follow the code: a change to the code that computes a stage needs a decision.

Each stage's modules (config.STAGE_CODE) are fingerprinted by their syntax tree without
docstrings, so comments, docstrings and formatting change nothing. When a fingerprint changes,
this test fails until the change's author decides:
- results change: bump ALGO_VERSION[stage] (new ids, so old results are never reused), then
  record the new fingerprint;
- results do not change (a refactor, a new error message): record the new fingerprint only.
Record with: python tests/test_stage_code.py --record (and say which in the commit message).
"""

import ast
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.config import ALGO_VERSION, STAGE_CODE  # noqa: E402

RECORD = ROOT / "tests" / "data" / "stage_code.json"


def _fingerprint(module: str) -> str:
    tree = ast.parse((ROOT / "src" / "ddflow" / module).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def current() -> dict:
    return {
        stage: {"version": ALGO_VERSION[stage], "code": {m: _fingerprint(m) for m in modules}}
        for stage, modules in STAGE_CODE.items()
    }


def test_every_stage_code_change_was_decided():
    recorded, now = json.loads(RECORD.read_text()), current()
    changed = [
        f"{stage}: {m}"
        for stage, entry in now.items()
        for m, fp in entry["code"].items()
        if recorded.get(stage, {}).get("code", {}).get(m) != fp
        and recorded.get(stage, {}).get("version") == entry["version"]
    ]
    assert not changed, (
        f"code that computes a stage changed: {changed}. If results change, bump "
        "ALGO_VERSION for that stage in src/ddflow/config.py; either way record the new code "
        "with `python tests/test_stage_code.py --record` (see this file's docstring)"
    )


def test_every_stage_with_an_id_is_covered():
    assert set(STAGE_CODE) == set(ALGO_VERSION)
    for modules in STAGE_CODE.values():
        assert all((ROOT / "src" / "ddflow" / m).is_file() for m in modules)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORD.write_text(json.dumps(current(), indent=2, sort_keys=True) + "\n")
    print(f"recorded {RECORD}")
