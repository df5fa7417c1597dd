"""One command per paper and size: run its configs in one working directory, then render.

The configs share data, teacher, shards and student runs through their stage ids, so running
them one after another in one directory computes each shared result once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from ddflow.config import ConfigError, load_config, paper_table_names, report_dir
from ddflow.io import atomic_path, read_json, write_json


def _lists_paper(path: Path, paper: str) -> bool:
    """Whether a config outside config/<paper>/ regenerates one of the paper's tables (the
    applications' configs serve both papers)."""
    block = (yaml.safe_load(path.read_text()) or {}).get("report", {}).get("paper") or {}
    return any(t.startswith(f"{paper}/") for t in paper_table_names(block))


def paper_configs(paper: str, size: str) -> list[Path]:
    """config/<paper>/*.<size>.yaml, and any other config of that size that lists its tables."""
    own = sorted(Path("config", paper).glob(f"*.{size}.yaml"))
    others = [
        c
        for c in sorted(Path("config").glob(f"*/*.{size}.yaml"))
        if c.parent.name != paper and _lists_paper(c, paper)
    ]
    configs = own + others
    if not configs:
        raise ConfigError(
            f"no config/{paper}/*.{size}.yaml here: run `ddflow paper` from the repository root "
            "(papers: cda, delt; sizes: mini, full)"
        )
    return configs


def regenerate_paper(
    paper: str,
    size: str,
    snakemake_args: list[str],
    render_only: bool = False,
    dry_run: bool = False,
    only: list[str] | None = None,
    rehearse: bool = False,
) -> int:
    """Run the paper's configs (or those named in `only`), then render every finished one."""
    configs = paper_configs(paper, size)
    cfgs = {c: load_config(str(c)) for c in configs}  # every config checked before any run
    selected = [c for c in configs if not only or any(o in c.name for o in only)]
    if not selected:
        raise ConfigError(f"--only {only}: no match in {[c.name for c in configs]}")
    if rehearse:
        return _rehearse_paper(paper, size, selected, snakemake_args)
    timings = {}
    if not render_only:
        for c in selected:
            cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--configfile", str(c)]
            cmd += [*(["-n"] if dry_run else []), *snakemake_args]
            print(f"ddflow paper: {' '.join(cmd[1:])}", flush=True)
            start = time.time()
            if subprocess.run(cmd).returncode != 0:
                print(
                    f"ddflow paper: {c} failed; its job logs are under {report_dir(cfgs[c])} and "
                    f"results/{cfgs[c]['dataset']['name']}/; fix and rerun (finished jobs are "
                    "kept)",
                    file=sys.stderr,
                )
                return 1
            timings[str(c)] = round(time.time() - start, 1)
    if dry_run:
        return 0
    out = Path("results", "papers", f"{paper}-{size}")
    if (out / "timings.json").exists():  # times of configs not run by this call are kept
        timings = {**read_json(out / "timings.json"), **timings}
    items = render_paper(paper, size, cfgs, out, timings)
    print(f"ddflow paper: {len(items)} tables and figures in {out}/index.md", flush=True)
    return 0


def _rehearse_paper(paper: str, size: str, configs: list[Path], snakemake_args) -> int:
    """The paper's configs rehearsed in one scratch directory (they share its stand-in stages),
    then its tables rendered there from the rehearsal's cells: results/papers/<paper>-<size>/
    under the scratch directory, never beside real results."""
    import os

    from ddflow.rehearse import rehearse

    workdir = Path("results", "rehearsals").resolve()
    outcomes = rehearse(configs, workdir, snakemake_args=snakemake_args)
    standins = {o.config: load_config(str(o.standin)) for o in outcomes}
    timings = {str(o.config): round(o.wall_s, 1) for o in outcomes}
    here = Path.cwd()
    os.chdir(workdir)
    try:
        out = Path("results", "papers", f"{paper}-{size}.rehearsal")
        items = render_paper(paper, f"{size} (rehearsal)", standins, out, timings)
    except ConfigError as e:  # nothing finished: the outcomes above say why
        print(f"ddflow paper: {e}", file=sys.stderr)
        return 1
    finally:
        os.chdir(here)
    print(f"ddflow paper: {len(items)} rehearsed tables and figures in {workdir / out}/index.md")
    return 0 if all(o.passed for o in outcomes) else 1


def render_paper(
    paper: str, size: str, cfgs: dict[Path, dict], out: Path, timings: dict[str, float]
) -> list[dict]:
    from ddflow.report.paper import write_paper

    cells, tables, missing = [], [], []
    for c, cfg in cfgs.items():
        block = cfg["report"]["paper"]
        path = Path(report_dir(cfg), "paper", "cells.csv")
        if not block:
            missing.append(f"{c} (no report.paper block)")
            continue
        if not path.exists():
            missing.append(f"{c} (not run: {path} missing)")
            continue
        cells.append(pd.read_csv(path, keep_default_na=False, na_values=[""]))
        # a config that serves both papers (the applications') adds only this paper's tables
        tables += [
            t for t in paper_table_names(block) if t.startswith(f"{paper}/") and t not in tables
        ]
    if not cells:
        raise ConfigError(f"nothing to render for {paper} {size}: " + "; ".join(missing))
    items = write_paper(pd.concat(cells, ignore_index=True), tables, out)
    write_json(out / "timings.json", timings)
    _write_index(paper, size, cfgs, out, items, timings, missing)
    return items


def _write_index(paper, size, cfgs, out, items, timings, missing) -> None:
    lines = [
        f"# {paper.upper()} paper, {size} scale: tables and figures regenerated by ddflow",
        "",
        f"`ddflow paper {paper} {size}`, rendered {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
        " Published numbers: `src/ddflow/report/published.csv` (transcribed from the paper).",
        "",
        "| experiment | config | report | wall s (its last `ddflow paper` run) |",
        "|---|---|---|---|",
    ]
    for c, cfg in cfgs.items():
        rel = Path("..", "..", *Path(report_dir(cfg)).parts[1:])
        wall = timings.get(str(c), "")
        lines.append(f"| {cfg['report']['name']} | `{c}` | [{rel}]({rel}) | {wall} |")
    if timings:
        lines.append(f"\nTotal wall time: {sum(timings.values()):.0f} s.")
    if missing:
        lines += ["", "Not rendered: " + "; ".join(missing)]
    for kind in ("table", "figure"):
        lines += ["", f"## {kind.capitalize()}s", ""]
        lines += [
            f"- [{i['name']}]({i['path']}): {i['caption']}" for i in items if i["kind"] == kind
        ]
    with atomic_path(out / "index.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
