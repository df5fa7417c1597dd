"""`ddflow`: check a config, show what the workflow will build, regenerate a paper.

ddflow check CONFIG      validate; print stage ids and the output folders
ddflow plan CONFIG       also list every recovery shard and student run
ddflow paper PAPER SIZE  run every config/PAPER/*.SIZE.yaml in this working directory, then
                         render the paper's tables beside the published numbers
"""

from __future__ import annotations

import argparse
import sys

from ddflow.config import StageIds, base_method, check_models, cuda_missing, load_config
from ddflow.data.catalog import check_ipc_fits, num_classes
from ddflow.errors import DdflowError
from ddflow.methods import kind_of
from ddflow.recover.shards import method_shards


def _describe(path: str, list_jobs: bool) -> None:
    cfg = load_config(path)
    check_models(cfg, resolve_libraries=True)  # torchvision:/timm: names too (imports them)
    check_ipc_fits(cfg["dataset"], cfg["ipc"], list_folders=True)
    if cfg["runtime"]["device"] == "cuda" and (note := cuda_missing()):
        print(f"warning (fine on a cluster whose GPU nodes run the jobs): {note}")
    ids = StageIds(cfg)
    ds = cfg["dataset"]["name"]
    n_classes = num_classes(cfg["dataset"])
    print(f"dataset {ds}: {cfg['dataset']['source']}, {n_classes} classes, data id {ids.data}")
    print(
        f"teacher {cfg['teacher']['arch']}: results/{ds}/teacher/"
        f"{cfg['teacher']['arch']}-{ids.teacher}"
    )
    n_students = 0
    for name, m in cfg["methods"].items():
        line = f"method {name} ({m['kind']}): results/{ds}/distilled/{name}-{ids.method(name)}"
        base, seed = base_method(cfg["synthesis_members"], name)
        if seed is not None:
            line += f", synthesis seed {seed} of {base}"
        if kind_of(m).sharded:
            shards = method_shards(m, n_classes, cfg["ipc"])
            line += f", {len(shards)} shards"
            if list_jobs:
                line += "".join(f"\n  shard {s.name}" for s in shards)
        print(line)
        n_students += len(cfg["ipc"]) * len(cfg["student"]["seeds"]) * len(ids.students)
    protocols = ", ".join(f"{p} {sid}" for p, sid in ids.students.items())
    print(
        f"students {cfg['student']['arch']} (ids: {protocols}): {n_students} runs "
        f"(IPC {cfg['ipc']} x seeds {cfg['student']['seeds']} x {len(ids.students)} label "
        f"protocols x {len(cfg['methods'])} sets)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ddflow", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("check", "validate a config and print stage ids"),
        ("plan", "also list every recovery shard"),
    ]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("config")
    p = sub.add_parser(
        "paper",
        help="regenerate a paper's tables and figures (run from the repository root)",
        description="Run every config/PAPER/*.SIZE.yaml with Snakemake in this working directory "
        "(they share the teacher, shards and students), then write the paper's tables beside "
        "the published numbers, its figures and an index to results/papers/PAPER-SIZE/. "
        "Arguments after -- go to every snakemake call (e.g. -- --cores 8 --resources gpu=2).",
    )
    p.add_argument("paper", help="cda or delt")
    p.add_argument("size", choices=["mini", "full"])
    p.add_argument("--render-only", action="store_true", help="only render finished results")
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only configs whose name contains NAME"
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="plan every config, run nothing")
    p.add_argument("snakemake_args", nargs="*", help="after --: passed to snakemake")
    args = ap.parse_args(argv)
    try:
        if args.command == "paper":
            from ddflow.report.regenerate import regenerate_paper

            return regenerate_paper(
                args.paper,
                args.size,
                args.snakemake_args,
                render_only=args.render_only,
                dry_run=args.dry_run,
                only=args.only,
            )
        _describe(args.config, args.command == "plan")
    except (DdflowError, FileNotFoundError) as e:
        print(f"ddflow: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
