"""Paper tables: ddflow's results beside the published numbers, in the paper's own layout.

The published numbers (`published.csv`) carry, per cell, the paper's row and column labels and
what the cell measured: dataset, method, IPC, student and the varied setting, the latter in
ddflow's config keys. An experiment's results are placed in the paper's coordinates by its
`report.paper` block (which tables it regenerates, and at mini scale which paper dataset and
student it stands in for); a ddflow result fills a cell when its kind, IPC and student match and
every key of the cell's setting has that value in the run's effective config. Results that fill
no cell are listed under the table, never dropped.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from ddflow.config import (
    APPLICATION_TABLES,
    configured_method,
    paper_stand_ins,
    student_protocols,
    teacher_is_loaded,
)
from ddflow.io import atomic_path
from ddflow.methods import KINDS
from ddflow.report.paper_figures import PAPER_FIGURES, figure_for, file_stem

# Kinds ddflow runs; any other published method is quoted, never regenerated.
IMPLEMENTED = set(KINDS) | {"full"}  # full: the squeezed teacher itself (TEACHER_TABLES)
# Setting keys that live in the student recipe rather than the method.
STUDENT_KEYS = {
    "student_epochs": "epochs",
    "student_batch_size": "batch_size",
    "labels": "labels",
}
PAPER_NAMES = {
    "cda": "CDA (Yin & Shen, Dataset Distillation in Large Data Era)",
    "delt": "DELT",
    "gvbsm": "G-VBSM (Shao et al., Generalized Large-Scale Data Condensation, CVPR 2024)",
    "edc": "EDC (Shao et al., Elucidating the Design Space of Dataset Condensation, NeurIPS 2024)",
    "lpld": "LPLD (Xiao & He, Are Large-scale Soft Labels Necessary for Large-scale Dataset "
    "Distillation?, NeurIPS 2024)",
    "fadrm": "FADRM (Cui et al., Fast and Accurate Data Residual Matching, NeurIPS 2025)",
    "cvdd": "CV-DD (Cui et al., Dataset Distillation via Committee Voting)",
    "cim": (
        "CIM (Condensing Large-Scale Datasets Directly with Minimal Information Loss, ECCV 2026)"
    ),
}


def load_published(source=None) -> pd.DataFrame:
    """The published numbers: the shipped file, or a path or text stream in its format."""
    text = {"setting": str, "note": str, "row": str, "col": str, "student": str, "inferred": str}
    if source is None:
        with resources.files("ddflow").joinpath("report/published.csv").open("rb") as f:
            return load_published(io.BytesIO(f.read()))
    table = pd.read_csv(source, dtype=text, encoding="utf-8")
    table["setting"] = table["setting"].fillna("")
    table["student"] = table["student"].fillna("")
    table["note"] = table["note"].fillna("")
    table["inferred"] = table["inferred"].fillna("") if "inferred" in table else ""
    table["ipc"] = table["ipc"].astype("Int64")
    return table


def parse_setting(setting: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in setting.split(";") if kv)


def _paper_student(arch: str) -> str:
    return arch.split(":", 1)[1] if ":" in arch else arch


# Setting keys of incremental cells: the run's step count and the classes seen at the cell's step.
INCREMENTAL_KEYS = {"classes", "steps"}


def _results(summary: pd.DataFrame, application: str | None, cfg: dict, apps: dict) -> list[dict]:
    """The rows a table of this source is filled from, in one shape (top1_mean/std, seeds)."""
    teacher_top1 = float(summary.teacher_top1.iloc[0]) if len(summary) else float("nan")
    if application is None:
        return [
            {**r._asdict(), "top1_mean": r.top1_last_mean, "top1_std": r.top1_last_std}
            for r in summary.itertuples()
        ]
    table = apps.get(application)
    if table is None:
        raise ValueError(
            f"report.paper lists a {application} table but the experiment has no {application} "
            f"results: set the config's `{application}` block"
        )
    if application == "incremental":
        steps = int(cfg["incremental"]["steps"])
        return [
            {
                **r._asdict(), "student": cfg["student"]["arch"], "seeds": int(r.runs),
                "teacher_top1": teacher_top1, "cl_steps": steps, "cl_step": int(r.step),
            }
            for r in table.itertuples()
        ]  # fmt: skip
    return [  # pruning: the student is the slimmed network, named by its architecture
        {
            **r._asdict(), "student": r.student.split(" slimmed", 1)[0],
            "top1_mean": r.top1_last_mean, "top1_std": r.top1_last_std,
        }
        for r in table.itertuples()
    ]  # fmt: skip


def _costs(cost: dict | None) -> tuple[dict, dict]:
    """Per (method, ipc, protocol): the set's measured recovery hours and peak GB (cost.csv),
    and the squeeze's (the teacher's metrics; a loaded teacher costs no training)."""
    if not cost:
        return {}, {}
    per_set = {
        (r.method, int(r.ipc), r.protocol): {
            "recover_hours": r.recover_wall_s / 3600,
            "recover_peak_gb": r.recover_peak_mb / 1024,
            "cost_device": r.device,
        }
        for r in cost["table"].itertuples()
    }
    t = cost["teacher"]
    squeeze = {
        "squeeze_hours": t["wall_s"] / 3600,
        "squeeze_peak_gb": t.get("peak_gpu_mb", t["peak_rss_mb"]) / 1024,
    }
    return per_set, squeeze


# Tables of the squeeze itself: their cells (method "full") are the teacher's test accuracy.
TEACHER_TABLES = {"cda/table5"}
# Quoted rows the printed gains of a table are over (CDA Table 5: Ridnik et al.'s ResNet-50).
GAIN_OVER_QUOTED = {"cda/table5": "ridnik2021"}


def squeeze_settings(teacher: dict) -> dict:
    """A trained teacher's place in CDA Table 5: its initial weights and its recipe ("cda": Adam,
    label smoothing 0.2, CutoutPIL and RandAugment, Table 21a; lr, batch and epochs are scale)."""
    init = teacher.get("init") or {}
    weights = str(init.get("pretrained", "")).upper()
    cda = (
        teacher.get("optimizer") == "adam"
        and teacher.get("label_smoothing") == 0.2
        and bool(teacher.get("cutout"))
        and bool(teacher.get("randaugment"))
    )
    return {
        "teacher_init": "random" if not init else (
            "imagenet1k" if weights.startswith("IMAGENET1K") or weights == "DEFAULT"
            else "checkpoint"
        ),
        "recipe": "cda" if cda else "ddflow",
    }  # fmt: skip


def _teacher_rows(cfg: dict, teacher: dict | None, base: dict) -> list[dict]:
    """The one row a squeeze table takes from an experiment: its trained teacher's accuracy."""
    if not teacher or "test_top5" not in teacher or teacher_is_loaded(cfg["teacher"]):
        return []  # a loaded teacher was not squeezed here; older metrics have no top-5
    return [
        {
            **base, "method": "full", "kind": "full", "ipc": 0, "paper_ipc": 0, "seeds": 1,
            "student": cfg["teacher"]["arch"], "paper_student": base["paper_teacher"],
            "top1_mean": float(teacher["test_top1"]), "top1_std": float("nan"),
            "top5_mean": float(teacher["test_top5"]),
            "method_config": json.dumps(squeeze_settings(cfg["teacher"]), sort_keys=True),
            "student_config": json.dumps({"teacher": cfg["teacher"]}, sort_keys=True),
            "protocol": "", "sweep": "", "application": "squeeze",
        }
    ]  # fmt: skip


def experiment_cells(
    summary: pd.DataFrame,
    experiment: dict,
    applications: dict | None = None,
    cost: dict | None = None,
    teacher: dict | None = None,
) -> pd.DataFrame:
    """An experiment's results (summary.csv rows, or an application's table rows for the tables
    an application fills), once per paper table it regenerates, with what each stands for in
    that table (the paper's dataset, student and IPC) and, given `cost` ({"table": cost.csv,
    "teacher": the teacher's cost}), what making its set took. Squeeze tables (TEACHER_TABLES)
    take the trained teacher's test top-1/top-5 from its metrics, `teacher`."""
    cfg = experiment["config"]
    per_set, squeeze = _costs(cost)
    paper = cfg["report"].get("paper") or {}
    recipes = student_protocols(cfg["student"])
    synthesis = experiment.get("synthesis_seeds", {})
    rows = []
    for table, stand_in in paper_stand_ins(paper).items() if paper else []:
        application = APPLICATION_TABLES.get(table)
        base = {  # what every row of this table shares
            "experiment": cfg["report"]["name"] or "default", "scale": paper["scale"],
            "table": table, "paper_dataset": stand_in.get("dataset") or cfg["dataset"]["name"],
            "dataset": cfg["dataset"]["name"], "teacher": cfg["teacher"]["arch"],
            "paper_teacher": stand_in.get("teacher") or _paper_student(cfg["teacher"]["arch"]),
            **squeeze,
        }  # fmt: skip
        if table in TEACHER_TABLES:
            top1 = float((teacher or {}).get("test_top1", float("nan")))
            extra = {"teacher_top1": top1, "cl_steps": 0, "cl_step": 0,
                     "student_params": float("nan")}  # fmt: skip
            rows += _teacher_rows(cfg, teacher, {**base, **extra})
            continue
        for r in _results(summary, application, cfg, applications or {}):
            rows.append(
                {
                    **base,
                    "paper_student": stand_in.get("student") or _paper_student(r["student"]),
                    "paper_ipc": int(stand_in.get("ipc", {}).get(str(r["ipc"]), r["ipc"])),
                    "method": r["method"],
                    "kind": r["kind"],
                    "ipc": int(r["ipc"]),
                    "student": r["student"],
                    "seeds": int(r["seeds"]),
                    "top1_mean": float(r["top1_mean"]),
                    "top1_std": float(r["top1_std"]),
                    "teacher_top1": float(r["teacher_top1"]),
                    "method_config": json.dumps(
                        configured_method(cfg["methods"], synthesis, r["method"]), sort_keys=True
                    ),
                    "protocol": r["protocol"],
                    "student_config": json.dumps(recipes[r["protocol"]], sort_keys=True),
                    "sweep": r["method"].split("__", 1)[0] if "__" in r["method"] else "",
                    "application": application or "",
                    "cl_steps": r.get("cl_steps", 0),
                    "cl_step": r.get("cl_step", 0),
                    "student_params": r.get("student_params", float("nan")),
                    **per_set.get((r["method"], int(r["ipc"]), r["protocol"]), {}),
                }
            )
    return pd.DataFrame(rows)


def _same(value, text: str) -> bool:
    if isinstance(value, bool) or text in ("true", "false"):
        return str(value).lower() == text
    try:
        return math.isclose(float(value), float(text), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return str(value) == text


def _fits(cell, run) -> bool:
    if cell.method != run.kind or cell.dataset != run.paper_dataset:
        return False
    if not pd.isna(cell.ipc) and int(cell.ipc) != run.paper_ipc:
        return False
    if cell.student and cell.student != run.paper_student:
        return False
    setting = parse_setting(cell.setting)
    if "steps" in setting and (int(setting["steps"]), cell.cl_step) != (
        run.cl_steps,
        run.cl_step,
    ):  # a stand-in fills the paper's step k with its own step k, whatever its class count
        return False
    method, student = json.loads(run.method_config), json.loads(run.student_config)
    for key, text in setting.items():
        if key in INCREMENTAL_KEYS or key == "stage":
            continue
        if key in ("recover_model", "relabel_model"):
            labeler = (student.get("relabel_model") or {}).get("arch")
            model = _paper_student(labeler) if key == "relabel_model" and labeler else None
            if (model or run.paper_teacher) != text:  # the labeler, else the recovery teacher
                return False
            continue
        if key == "teachers":  # FADRM vs FADRM+: how many teachers recover the set
            if len(method.get("teachers", ["teacher"])) != int(text):
                return False
            continue
        if key == "label_keep":  # a label budget's kept fraction (LPLD's 40x: 0.025)
            if not _same((student.get("label_budget") or {}).get("keep", 1.0), text):
                return False
            continue
        where, name = (student, STUDENT_KEYS[key]) if key in STUDENT_KEYS else (method, key)
        if name not in where or not _same(where[name], text):
            return False
    return True


def _runs(cells: pd.DataFrame, table: str) -> pd.DataFrame:
    return cells[cells.table == table] if len(cells) else cells


def _run_key(run) -> tuple:
    return (run.kind, run.ipc, run.student, run.method_config, run.student_config, run.dataset)


# Printed gains (an arrow or "(+x)" beside a cell): the method over this baseline, same cell.
GAIN_OVER = {"cda/table4": "sre2l", "delt/table4": "rded", "delt/table6": "rded"}


def _fill(cell, runs: pd.DataFrame) -> tuple[object | None, bool]:
    """(the one run that fills a top-1 cell, or None; whether several did)."""
    fits = [r for r in runs.itertuples() if _fits(cell, r)]
    if len(fits) > 1 and not cell.setting:
        fits = [r for r in fits if not r.sweep] or fits
    if len(fits) > 1 and "labels" not in parse_setting(cell.setting):
        fits = [r for r in fits if r.protocol == "online"] or fits  # the papers' main protocol
    if len(fits) > 1:  # one run shared by several experiments counts once
        fits = list({_run_key(r): r for r in reversed(fits)}.values())
    return (fits[0] if len(fits) == 1 else None), len(fits) > 1


def _with_steps(pub: pd.DataFrame) -> pd.DataFrame:
    """Incremental cells name the classes seen; their step is classes / (classes per step),
    the classes per step being the most classes seen in the table at that step count / steps."""
    settings = pub.setting.map(parse_setting)
    steps = settings.map(lambda s: int(s.get("steps", 0)))
    classes = settings.map(lambda s: int(s.get("classes", 0)))
    most = classes.groupby(steps).transform("max")
    per_step = (most // steps.where(steps > 0, 1)).where(steps > 0, 1)
    return pub.assign(cl_step=(classes // per_step).where(steps > 0, 0).astype(int))


COST_TABLES = {"delt/table5", "cda/appendix_c"}
# Cost metrics: the cells' stage (setting stage=..., default recover) -> the run's column.
COST_OF = {
    "hours": {"recover": "recover_hours", "squeeze": "squeeze_hours"},
    "memory_gb": {"recover": "recover_peak_gb", "squeeze": "squeeze_peak_gb"},
}


def _cost(cell, run) -> float:
    """A cost cell's measured value from its run (hours or GB), NaN when not measured."""
    if run is None:
        return float("nan")
    stage = parse_setting(cell.setting).get("stage", "recover")
    metric = cell.metric if cell.metric in COST_OF else "hours"
    value = getattr(run, COST_OF[metric][stage], float("nan"))
    return float(value) if not pd.isna(value) else float("nan")


def match(published: pd.DataFrame, cells: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table's published cells (paper order) with the ddflow run that fills each, if any.

    A cell without a setting is the paper's main recipe: among several fitting runs the one that
    is not a sweep variant fills it; a tie is left empty and reported. A printed gain is filled
    with ddflow's own gain over the same baseline (std: both stds in quadrature).
    """
    paper, name = table.split("/")
    pub = _with_steps(published[(published.paper == paper) & (published.table == name)].copy())
    runs = _runs(cells, table)
    filled = []
    for cell in pub.itertuples():
        run, ambiguous, mean, std = None, False, float("nan"), float("nan")
        if cell.metric in ("top1", "top5"):
            run, ambiguous = _fill(cell, runs)
            if run:
                mean, std = getattr(run, f"{cell.metric}_mean", float("nan")), run.top1_std
                std = std if cell.metric == "top1" else float("nan")
        elif cell.metric in ("top1_gain", "top5_gain") and table in GAIN_OVER_QUOTED:
            run, ambiguous = _fill(cell, runs)
            metric = cell.metric.removesuffix("_gain")
            quoted = pub[(pub.method == GAIN_OVER_QUOTED[table]) & (pub.metric == metric)]
            quoted = quoted[quoted.col == cell.col].value
            if run and len(quoted) == 1:  # ddflow's teacher over the published baseline
                mean = getattr(run, f"{metric}_mean") - float(quoted.iloc[0])
        elif cell.metric in COST_OF:
            run, ambiguous = _fill(cell, runs)
            mean = _cost(cell, run)
        elif cell.metric == "params_m":  # the student's size, counted from the trained model
            run, ambiguous = _fill(cell, runs)
            mean = run.student_params / 1e6 if run else float("nan")
        elif cell.metric == "hours_saving_pct":  # DELT Table 5's arrows: time saved vs SRe2L
            run, ambiguous = _fill(cell, runs)
            base, base_ambiguous = _fill(cell._replace(method="sre2l", setting=""), runs)
            ambiguous |= base_ambiguous
            ours, theirs = _cost(cell, run), _cost(cell, base)
            mean = 100 * (1 - ours / theirs) if theirs > 0 else float("nan")
        elif cell.metric == "top1_gain" and table in GAIN_OVER:
            run, ambiguous = _fill(cell, runs)
            base, base_ambiguous = _fill(cell._replace(method=GAIN_OVER[table]), runs)
            ambiguous |= base_ambiguous
            if run and base:
                mean = run.top1_mean - base.top1_mean
                std = math.hypot(run.top1_std, base.top1_std)
        run = run if not math.isnan(mean) else None  # a fitting run with nothing measured
        filled.append(
            {
                "ddflow_method": run.method if run else "",
                "ddflow_experiment": run.experiment if run else "",
                "ddflow_mean": mean,
                "ddflow_std": std,
                "ddflow_seeds": run.seeds if run else 0,
                "ambiguous": ambiguous,
            }
        )
    return pd.concat([pub.reset_index(drop=True), pd.DataFrame(filled)], axis=1)


def _fmt_cell(c) -> str:
    paper = f"{c.value:g}" + (f" ± {c.std:g}" if not pd.isna(c.std) else "")
    if c.method not in IMPLEMENTED:
        return f"{paper} (quoted)"
    if c.ddflow_seeds == 0:
        return f"— / {paper}"
    if c.metric in (*COST_OF, "params_m"):  # measured once, on this machine: no std or diff
        return f"**{c.ddflow_mean:.3g}** / {paper}"
    diff = c.ddflow_mean - c.value
    std = "" if pd.isna(c.ddflow_std) else f" ± {c.ddflow_std:.2f}"
    return f"**{c.ddflow_mean:.2f}{std}** / {paper} ({diff:+.2f})"


def layout(matched: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows and columns (in the paper's order), one formatted string per cell."""
    metrics = matched.metric.unique()
    m = matched.copy()
    if len(metrics) > 1:
        m["col"] = m["col"] + " [" + m["metric"] + "]"
    rows = list(dict.fromkeys(m["row"]))
    cols = list(dict.fromkeys(m["col"]))
    grid = pd.DataFrame("", index=rows, columns=cols)
    for c in m.itertuples():
        marks = (" †" if c.uncertain else "") + (" ‡" if c.inferred else "")
        grid.loc[c.row, c.col] = _fmt_cell(c) + marks
    quoted_rows = {r for r, g in m.groupby("row") if not g.method.isin(IMPLEMENTED).any()}
    grid.index = [f"{r} (published only)" if r in quoted_rows else r for r in rows]
    return grid


def unmatched_runs(matched: pd.DataFrame, cells: pd.DataFrame, table: str) -> pd.DataFrame:
    runs = _runs(cells, table)
    used = set(zip(matched.ddflow_experiment, matched.ddflow_method))
    rest = runs[[(e, m) not in used for e, m in zip(runs.experiment, runs.method)]]
    return rest


_LABEL_WORDS = {
    "online": "online soft labels from the teacher",
    "stored": "stored (FKD) soft labels from the teacher",
    "hard": "hard class labels",
    "hybrid": "online soft labels plus a hard-label term",
}


def _application_words(r, g: pd.DataFrame) -> str:
    if r.application == "incremental":
        return (
            f" Class-incremental learning in {r.cl_steps} steps: at each step a fresh student "
            "trains on the distilled images of the classes seen so far and is tested on their "
            "test images; ddflow's step k stands in for the paper's step k; std over "
            f"{int(g.seeds.max())} runs (sets x student seeds)."
        )
    if r.application == "pruning":
        return (
            f" The slimmed {r.student} (data-free network slimming, the config's `pruning` "
            "block) retrained from its kept weights on each set."
        )
    return ""


def _squeeze_words(exp: str, r) -> str:
    t = json.loads(r.student_config)["teacher"]
    init = t.get("init") or {}
    parts = [
        f"{t['epochs']} epochs", f"{t.get('optimizer', 'sgd')} lr {t['lr']:g}",
        f"batch {t['batch_size']}", f"weight decay {t['weight_decay']:g}",
        f"label smoothing {t.get('label_smoothing', 0):g}",
        f"CutoutPIL {t['cutout']:g}" if t.get("cutout") else "no cutout",
        f"RandAugment {t['randaugment']}" if t.get("randaugment") else "no RandAugment",
        "from " + (init.get("pretrained") or init.get("checkpoint") or "random initialisation"),
    ]  # fmt: skip
    stand_in = (
        f" ddflow's {r.dataset} stands in for the paper's {r.paper_dataset}."
        if r.dataset != r.paper_dataset
        else ""
    )
    return (
        f"`{exp}` ({r.scale or 'unsized'} scale): the teacher {r.teacher} squeezed by ddflow "
        f"({', '.join(parts)}); top-1 and top-5 on the test split after the last epoch, one run."
        + stand_in
    )


def _inferred_words(paper: str, name: str) -> str:
    """What the table's ‡ cells infer (published.csv `inferred`: the paper does not say)."""
    pub = load_published()
    kinds = set(";".join(pub[(pub.paper == paper) & (pub.table == name)].inferred).split(";"))
    words = {
        "ipc": "its IPC (not restated for this ablation; the paper's setting, as its note says)",
        "student": "its student's low-resolution variant (a 3x3 stem without max-pool, as the "
        "authors' code builds ResNets for small images; the paper says ResNet)",
    }
    said = [w for k, w in words.items() if k in kinds]
    return f" ‡ = the paper does not state, ddflow infers {' and '.join(said)}." if said else ""


def caption(table: str, cells: pd.DataFrame) -> str:
    paper, name = table.split("/")
    runs = _runs(cells, table)
    title = re.sub(r"^appendix_(\w)$", lambda m: f"Appendix {m[1].upper()}", name)
    lines = [f"{PAPER_NAMES.get(paper, paper)}, {title.replace('table', 'Table ')}."]
    if (runs.scale == "rehearsal").any():
        lines[0] = (
            "REHEARSAL (`ddflow rehearse`): stand-in data and random stand-in weights at cut "
            "sizes; these numbers are not results. " + lines[0]
        )
    for exp, g in runs.groupby("experiment", sort=False):
        r = g.iloc[0]
        if r.application == "squeeze":
            lines.append(_squeeze_words(exp, r))
            continue
        stand_in = ""
        ipcs = sorted({(int(a), int(b)) for a, b in zip(g.ipc, g.paper_ipc) if a != b})
        if r.dataset != r.paper_dataset or _paper_student(r.student) != r.paper_student or ipcs:
            parts = [f"ddflow's {r.dataset} stands in for the paper's {r.paper_dataset}"]
            if _paper_student(r.student) != r.paper_student:
                parts.append(f"its student {r.student} for {r.paper_student}")
            parts += [f"its IPC {a} for IPC {b}" for a, b in ipcs]
            stand_in = " " + ", ".join(parts) + "."
        student = json.loads(r.student_config)
        lines.append(
            f"`{exp}` ({r.scale or 'unsized'} scale): teacher {r.teacher} at "
            f"{r.teacher_top1:.2f}% test top-1; students {r.student}, {student['epochs']} epochs, "
            f"{_LABEL_WORDS[student['labels']]}; top-1 on the test split at the last epoch, "
            f"mean ± std over {len(student['seeds'])} seeds {student['seeds']}."
            + stand_in
            + _application_words(r, g)
        )
    lines.append(
        "Cells: **ddflow** / paper (ddflow − paper). — = not run here; (quoted) = a method "
        "ddflow does not implement, published number only; † = cell reconstructed from a "
        "garbled PDF extraction."
        + _inferred_words(paper, name)
        + (
            f" Gain cells: ddflow's method minus its {GAIN_OVER[table]} in the same row and "
            "column (std: both stds in quadrature)."
            if table in GAIN_OVER
            else ""
        )
        + (
            f" Gain cells: ddflow's teacher minus the published {GAIN_OVER_QUOTED[table]} value "
            "of the same column."
            if table in GAIN_OVER_QUOTED
            else ""
        )
        + (
            " Hours and GB: measured once by ddflow on its runs' device ("
            + ", ".join(sorted(set(runs.get("cost_device", pd.Series(dtype=str)).dropna())))
            + "; tables/cost.csv: recovery summed over shards, its peak the largest shard's), "
            "so they compare the methods' relative cost, not the paper's hardware."
            if table in COST_TABLES
            else ""
        )
    )
    return "\n".join(lines)


def render_table(
    published: pd.DataFrame, cells: pd.DataFrame, table: str
) -> tuple[str, pd.DataFrame]:
    """Markdown of one paper table (ddflow beside the paper) and the matched cells."""
    matched = match(published, cells, table)
    if matched.empty:
        raise ValueError(f"no published numbers for '{table}' in published.csv")
    md = [caption(table, cells), "", layout(matched).to_markdown(), ""]
    ambiguous = matched[matched.ambiguous]
    if len(ambiguous):
        md.append(
            "Cells left empty because several ddflow runs fit them: "
            + "; ".join(f"{c.row} / {c.col}" for c in ambiguous.itertuples())
        )
    rest = unmatched_runs(matched, cells, table)
    if len(rest):
        md += [
            "ddflow runs with no published counterpart in this table:",
            "",
            rest[
                ["experiment", "method", "kind", "ipc", "student"]
                + (["cl_step"] if APPLICATION_TABLES.get(table) == "incremental" else [])
                + ["top1_mean", "top1_std"]
            ]
            .round(2)
            .to_markdown(index=False),
            "",
        ]
    return "\n".join(md) + "\n", matched


def paper_figure(
    published: pd.DataFrame, cells: pd.DataFrame, figure: str, out_png: str | Path
) -> None:
    """ddflow's curves (lines, ± std bands) over the paper's printed points (markers, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = PAPER_FIGURES[figure]
    paper, name = spec["table"].split("/")
    pub = published[(published.paper == paper) & (published.table == name)]
    runs = _runs(cells, spec["table"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {}
    for series, g in runs.groupby(
        runs.method_config.map(lambda m: json.loads(m).get(spec["series"]))
    ):
        x = g.method_config.map(lambda m: json.loads(m)[spec["x"]]).astype(float)
        g = g.assign(x=x.values).sort_values("x")
        (line,) = ax.plot(g.x, g.top1_mean, "-o", label=f"ddflow {series}")
        ax.fill_between(g.x, g.top1_mean - g.top1_std, g.top1_mean + g.top1_std, alpha=0.2)
        colors[series] = line.get_color()
    settings = pub.setting.map(parse_setting)
    for series, g in pub.groupby(settings.map(lambda s: s.get(spec["series"]))):
        x = g.setting.map(lambda s: float(parse_setting(s)[spec["x"]]))
        g = g.assign(x=x.values).sort_values("x")
        ax.plot(g.x, g.value, "--s", color=colors.get(series), mfc="none", label=f"paper {series}")
    ax.set_xlabel(spec["x"])
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{figure} (from {spec['table']}): ddflow lines, paper dashed")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _html(table: str, cells: pd.DataFrame, matched: pd.DataFrame) -> str:
    """The same table as a standalone page (the Snakemake report embeds it)."""
    body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", layout(matched).to_html(border=1))
    text = html.escape(caption(table, cells)).replace("\n", "<br>\n")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{table}</title></head>"
        f"<body><h2>{table}</h2><p>{text}</p>{body}</body></html>\n"
    )


def write_paper(
    cells: pd.DataFrame,
    tables: list[str],
    out_dir: str | Path,
    published: pd.DataFrame | None = None,
) -> list[dict]:
    """Write the cells, each table (`<paper>-<table>.md`, matched cells as `.csv`) and each
    figure that prints numbers (`<paper>-<figure>.png`); return what was written, with captions.
    """
    published = load_published() if published is None else published
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "cells.csv") as tmp:
        cells.to_csv(tmp, index=False)
    items = []
    for table in tables:
        md, matched = render_table(published, cells, table)
        stem = file_stem(table)
        with atomic_path(out_dir / f"{stem}.csv") as tmp:
            matched.to_csv(tmp, index=False)
        with atomic_path(out_dir / f"{stem}.md") as tmp:
            tmp.write_text(f"# {table}\n\n{md}")
        with atomic_path(out_dir / f"{stem}.html") as tmp:
            tmp.write_text(_html(table, cells, matched))
        filled = int((matched.ddflow_seeds > 0).sum())
        items.append(
            {
                "kind": "table",
                "name": table,
                "path": f"{stem}.md",
                "caption": f"{caption(table, cells).splitlines()[0]} {filled} of "
                f"{len(matched)} published cells have a ddflow value.",
            }
        )
        for figure in figure_for(table):
            fstem = file_stem(figure)
            paper_figure(published, cells, figure, out_dir / f"{fstem}.png")
            items.append(
                {
                    "kind": "figure",
                    "name": figure,
                    "path": f"{fstem}.png",
                    "caption": f"{figure}: ddflow's curves (lines, ± std) over the paper's "
                    f"points from {table} (dashed).",
                }
            )
    return items
