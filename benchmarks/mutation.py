"""Mutation score of the result-critical modules against the fast unit suite (not part of CI).

    python benchmarks/mutation.py                       # every result-critical module
    python benchmarks/mutation.py src/ddflow/baselines.py --jobs 2

Copies the repository to a scratch folder (the work tree is never touched), configures mutmut
there, runs it, and prints each module's killed and surviving mutants, the score, and the diff of
every survivor. Needs `pip install mutmut` (3.x). Last line: `mutation score: <killed>/<total>`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where a wrong line changes a number in a results table.
CRITICAL = [
    "src/ddflow/baselines.py",
    "src/ddflow/data/pixels.py",
    "src/ddflow/labels/protocols.py",
    "src/ddflow/labels/soft.py",
    "src/ddflow/labels/stored.py",
    "src/ddflow/methods/base.py",
    "src/ddflow/methods/coresets.py",
    "src/ddflow/methods/external.py",
    "src/ddflow/methods/random_subset.py",
    "src/ddflow/methods/rded.py",
    "src/ddflow/methods/recovery.py",
    "src/ddflow/metrics/diversity.py",
    "src/ddflow/presets.py",
    "src/ddflow/recover/augment.py",
    "src/ddflow/recover/bn_loss.py",
    "src/ddflow/recover/early_late.py",
    "src/ddflow/recover/init.py",
    "src/ddflow/recover/schedules.py",
    "src/ddflow/report/tables.py",
    "src/ddflow/select/coreset.py",
    "src/ddflow/select/ranking.py",
    "src/ddflow/train/common.py",
    "src/ddflow/train/student.py",
    "src/ddflow/train/views.py",
]
# The fast unit suite: no Snakemake runs.
FAST_TESTS = [
    "tests/test_references.py",
    "tests/test_student.py",
    "tests/test_recover.py",
    "tests/test_schedules.py",
    "tests/test_delt.py",
    "tests/test_presets.py",
    "tests/test_paper_tables.py",
    "tests/test_config.py",
    "tests/test_data.py",
    "tests/test_golden.py",
    "tests/test_labels.py",
    "tests/test_method_keys.py",
    "tests/test_methods.py",
    "tests/test_stage_ids.py",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", default=CRITICAL)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ddflow-mutation-"))
    work = scratch / "ddflow"
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(".git", "results", ".snakemake", "mutants", "*_cache"),
    )
    settings = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src/ddflow"]',
            f"only_mutate = {list(args.modules)!r}",
            f"pytest_add_cli_args_test_selection = {FAST_TESTS!r}",
            'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]',
            'also_copy = ["tests", "config", "workflow", "Snakefile"]',
        ]
    )
    with open(work / "pyproject.toml", "a") as f:
        f.write(settings.replace("'", '"') + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)], cwd=work
    )
    if run.returncode not in (0, 1):
        sys.exit(f"mutmut failed ({run.returncode}); scratch copy kept in {scratch}")
    results = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=work,
        capture_output=True,
        text=True,
    ).stdout
    status = dict(re.findall(r"^\s*(\S+): (\w[\w ]*)$", results, re.M))
    per_module = Counter()
    for name, state in status.items():
        per_module[(name.split(".x")[0], state)] += 1
    for module in sorted({m for m, _ in per_module}):
        row = {s: n for (m, s), n in per_module.items() if m == module}
        print(f"{module}: {row}")
    untested = sorted({n.split("__mutmut_")[0] for n, s in status.items() if s == "no tests"})
    print("functions no fast test runs: " + ", ".join(untested))
    survivors = [n for n, s in status.items() if s == "survived"]
    for name in survivors:
        diff = subprocess.run(
            [sys.executable, "-m", "mutmut", "show", name], cwd=work, capture_output=True, text=True
        ).stdout
        print(f"--- {status[name]}: {name}\n{diff.strip()}")
    # a mutant no fast test even runs ("no tests") is a survivor too: nothing would catch it
    killed = sum(1 for s in status.values() if s in ("killed", "timeout"))
    missed = sum(1 for s in status.values() if s in ("survived", "no tests"))
    print(f"scratch copy: {scratch}")
    n_untested = sum(1 for s in status.values() if s == "no tests")
    print(f"untested mutants (no fast test runs them): {n_untested}")
    print(f"mutation score: {killed}/{killed + missed}")


if __name__ == "__main__":
    main()
