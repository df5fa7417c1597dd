"""Stage ids of every shipped config are pinned: users' results are found by these ids, so a
refactor that moves one (a reordered slice, a renamed key, a kind's upstream) would silently
rerun everything. A deliberate change (a config edited, a version bumped) re-records them:
python tests/test_stage_ids.py --record, saying why in the commit message.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ddflow.config import StageIds, load_config  # noqa: E402

RECORD = ROOT / "tests" / "data" / "stage_ids.json"


def current() -> dict:
    return {
        p.relative_to(ROOT).as_posix(): StageIds(load_config(str(p))).as_dict()
        for p in sorted((ROOT / "config").rglob("*.yaml"))
    }


def test_stage_ids_of_the_shipped_configs_are_the_recorded_ones():
    recorded, now = json.loads(RECORD.read_text()), current()
    moved = sorted(p for p in now if p in recorded and now[p] != recorded[p])
    assert not moved, (
        f"stage ids moved for {moved}: if deliberate, re-record with "
        "`python tests/test_stage_ids.py --record` and say why in the commit message"
    )
    assert set(recorded) <= set(now), f"configs gone: {sorted(set(recorded) - set(now))}"


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORD.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORD}")
