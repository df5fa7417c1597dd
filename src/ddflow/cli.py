"""`ddflow`: check a config, run it, follow it, regenerate a paper.

ddflow check CONFIG..    validate; print stage ids and the output folders (of each config)
ddflow plan CONFIG       also list every recovery shard and student run
ddflow plan --cost CONFIG  what it will need per stage: work, FLOPs, disk, peak memory, hours
ddflow run CONFIG [ARGS] validate, then run the workflow on it (ARGS go to snakemake)
ddflow status [DIR]      the latest run in DIR: jobs done, running (progress, ETA), failed, left
ddflow export SET OUT    a distilled set (results/.../distilled/<method>-<id>/ipc<N>) in the
                         Hugging Face datasets format, with teacher, labels and a card
ddflow paper PAPER SIZE  run every config/PAPER/*.SIZE.yaml in this working directory, then
                         render the paper's tables beside the published numbers
ddflow rehearse CONFIG.. each config end to end on this machine, on stand-in data and weights
                         that keep its shapes and cut its sizes (before a GPU-hour is spent)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ddflow import __version__
from ddflow.checks import check_experiment
from ddflow.config import StageIds, base_method, check_models, cuda_missing, load_config
from ddflow.errors import DdflowError
from ddflow.methods import kind_of
from ddflow.recover.shards import method_shards


def _describe(path: str, list_jobs: bool) -> None:
    cfg = load_config(path)
    check_models(cfg, resolve_libraries=True)  # torchvision:/timm: names too (imports them)
    n_classes = check_experiment(cfg, list_folders=True)
    if cfg["runtime"]["device"] == "cuda" and (note := cuda_missing()):
        print(f"warning (fine on a cluster whose GPU nodes run the jobs): {note}")
    ids = StageIds(cfg)
    ds = cfg["dataset"]["name"]
    print(f"dataset {ds}: {cfg['dataset']['source']}, {n_classes} classes, data id {ids.data}")
    for name, tid in ids.teachers.items():
        arch = (cfg["teachers"].get(name) or cfg["teacher"])["arch"]
        label = arch if name == "teacher" else f"{name} {arch}"
        print(f"teacher {label}: results/{ds}/teacher/{arch}-{tid}")
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


def check_all(configs: list[str], list_jobs: bool, cost: bool) -> int:
    """Each config in turn (several under a `== CONFIG` line each, a bad one's error there and
    the rest still checked); 2 when any failed."""
    failed = 0
    for path in configs:
        if len(configs) > 1:
            print(f"== {path}", flush=True)
        try:
            if cost:
                print(cost_report(path))
            else:
                _describe(path, list_jobs)
        except (DdflowError, OSError) as e:
            if len(configs) == 1:
                raise
            print(f"ddflow: error: {e}", flush=True)
            failed += 1
    return 2 if failed else 0


def cost_report(path: str) -> str:
    """The forecast of a config (ddflow/forecast.py), checked against its data where it is."""
    from ddflow.forecast import forecast, render

    cfg = load_config(path)
    check_models(cfg)
    try:
        check_experiment(cfg)
        where = "checked against its data on this machine"
    except DdflowError as e:  # the data is elsewhere (a cluster's): forecast from its known size
        where = f"not checked against its data ({str(e).splitlines()[0][:120]})"
    return f"ddflow plan --cost {path}: {where}\n\n" + render(cfg, forecast(cfg))


def snakefile() -> Path:
    """The workflow to run: the working directory's Snakefile, else the one of this checkout."""
    for candidate in (Path("Snakefile"), Path(__file__).resolve().parents[2] / "Snakefile"):
        if candidate.is_file():
            return candidate
    raise DdflowError(
        "no Snakefile here or beside the installed package: run from a clone of ddflow "
        "(pip install -e . there), or pass the workflow to snakemake with --snakefile"
    )


def run(config: str, snakemake_args: list[str]) -> int:
    """Check first (one clear line on a bad config), then hand over to Snakemake."""
    check_experiment(load_config(config))
    cmd = [sys.executable, "-m", "snakemake", "--configfile", config]
    if Path(snakefile()).resolve() != Path("Snakefile").resolve():
        cmd += ["--snakefile", str(snakefile())]
    if not {"--cores", "-c", "--jobs", "-j", "--profile"} & set(snakemake_args):
        cmd += ["--cores", "all"]
    print("ddflow: " + " ".join(cmd[2:] + snakemake_args), flush=True)
    return subprocess.run(cmd + snakemake_args).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ddflow", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"ddflow {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "run",
        help="validate a config, then run the workflow on it",
        description="Validate CONFIG, then run snakemake --configfile CONFIG (--cores all "
        "unless given) in this working directory. Arguments after the config go to snakemake "
        "(e.g. ddflow run config/config.yaml -n).",
    )
    p.add_argument("config")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="passed to snakemake")
    p = sub.add_parser("status", help="the latest run here: done, running (ETA), failed, left")
    p.add_argument("dir", nargs="?", default=".")
    p = sub.add_parser(
        "export",
        help="a distilled set in the Hugging Face datasets format, with its teacher and a card",
    )
    p.add_argument("set", help="a distilled set's folder: results/<ds>/distilled/<m>-<id>/ipc<N>")
    p.add_argument("out", help="the folder to write")
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload it as this dataset repo")
    p.add_argument(
        "--labels",
        metavar="PROTOCOL",
        help="ship only the stored labels of this protocol (a label budget's name, e.g. "
        "stored-top100-int8), or none; default: every budget's",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT if an earlier ddflow export wrote it (never a folder of your own)",
    )
    for name, help_text in [
        ("check", "validate a config and print stage ids"),
        ("plan", "also list every recovery shard"),
    ]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.add_argument(
        "--cost",
        action="store_true",
        help="forecast per stage: work and FLOPs, disk, peak host and device memory, and hours "
        "on every measured device profile (the data need not be on this machine)",
    )
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
    p.add_argument(
        "--rehearse",
        action="store_true",
        help="rehearse the configs (ddflow rehearse) in results/rehearsals/ instead of running "
        "them, then render the paper's tables from the rehearsal there",
    )
    p.add_argument("snakemake_args", nargs="*", help="after --: passed to snakemake")
    p = sub.add_parser(
        "rehearse",
        help="run configs end to end here on stand-in data and weights (cut sizes, same paths)",
        description="Run each config end to end with the real Snakefile in a scratch working "
        "directory, on a stand-in that keeps every shape a code path depends on and cuts only "
        "sizes (classes, images, IPC, iterations, epochs, seeds), with stand-in weights for "
        "every loaded model. Prints per config: passed or the failing rule with its error and "
        "log, peak memory per rule, the rendered tables; writes REHEARSAL.md there. Arguments "
        "after -- go to snakemake (e.g. -- --until teacher).",
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.add_argument("--workdir", default="results/rehearsals", help="scratch working directory")
    p.add_argument("--classes", type=int, help="keep this many classes (default: cut to 4)")
    p.add_argument(
        "--images-per-class", type=int, help="stand-in training images a class (default 16)"
    )
    p.add_argument("--cores", default="all")
    p.add_argument("snakemake_args", nargs="*", help="after --: passed to snakemake")
    argv = sys.argv[1:] if argv is None else list(argv)
    passed: list[str] | None = None
    if "--" in argv and argv[0] in ("paper", "rehearse"):
        # argparse cannot give `--`'s tail to a second positional once options came between
        cut = argv.index("--")
        argv, passed = argv[:cut], argv[cut + 1 :]
    args = ap.parse_args(argv)
    if passed is not None:
        args.snakemake_args = [*args.snakemake_args, *passed]
    try:
        if args.command == "run":
            return run(args.config, args.snakemake_args)
        if args.command == "export":
            from ddflow.export import export

            out = export(args.set, args.out, args.push_to_hub, args.overwrite, args.labels)
            print(f"ddflow: wrote {out}")
            return 0
        if args.command == "status":
            from ddflow.status import status

            print(status(args.dir))
            return 0
        if args.command == "paper":
            from ddflow.report.regenerate import regenerate_paper

            return regenerate_paper(
                args.paper,
                args.size,
                args.snakemake_args,
                render_only=args.render_only,
                dry_run=args.dry_run,
                only=args.only,
                rehearse=args.rehearse,
            )
        if args.command == "rehearse":
            from ddflow.rehearse import rehearse

            outcomes = rehearse(
                args.configs, args.workdir, args.cores, args.classes, args.snakemake_args,
                args.images_per_class,
            )  # fmt: skip
            return 0 if all(o.passed for o in outcomes) else 1
        if args.command in ("check", "plan"):
            return check_all(args.configs, args.command == "plan", getattr(args, "cost", False))
    except (DdflowError, OSError) as e:  # the user's input, files or disk: one line
        print(f"ddflow: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddflow: stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
