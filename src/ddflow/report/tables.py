"""Results tables: one row per (dataset, method, IPC, student) with seed statistics.

The headline is top-1 at the last epoch (no test-set model selection); best-seen is shown for
comparison with the papers, and every row carries the random real subset under the same recipe.
"""

from __future__ import annotations

import math

import pandas as pd

from ddflow.io import atomic_path, read_json

KEYS = ["dataset", "method", "kind", "ipc", "student", "protocol"]
# The soft-label protocol whose gain over the random subset hard labels are compared with.
SOFT_REFERENCE = "online"


def summarize(student_jsons: list[str]) -> pd.DataFrame:
    runs = pd.DataFrame([read_json(p) for p in student_jsons])
    g = runs.groupby(KEYS, sort=True)
    table = g.agg(
        seeds=("seed", "count"),
        top1_last_mean=("top1_last", "mean"),
        top1_last_std=("top1_last", "std"),
        top1_best_mean=("top1_best", "mean"),
        teacher_top1=("teacher_top1", "first"),
    ).reset_index()
    table["top1_last_std"] = table["top1_last_std"].fillna(0.0)
    # the random real subset under the same student and protocol, and the gain over it
    random = table[table["kind"] == "random"].set_index(["dataset", "ipc", "student", "protocol"])
    table["random_top1_last_mean"] = [
        random["top1_last_mean"].get((r.dataset, r.ipc, r.student, r.protocol), float("nan"))
        for r in table.itertuples()
    ]
    table["gain_over_random"] = table["top1_last_mean"] - table["random_top1_last_mean"]
    # the share of a method's soft-label gain over random that survives under hard labels
    gain = table.set_index(["dataset", "method", "ipc", "student", "protocol"])["gain_over_random"]

    def share(r) -> float:
        hard = gain.get((r.dataset, r.method, r.ipc, r.student, "hard"), math.nan)
        soft = gain.get((r.dataset, r.method, r.ipc, r.student, SOFT_REFERENCE), math.nan)
        return hard / soft if r.kind != "random" and soft > 0 else math.nan

    table["hard_share_of_soft_gain"] = [share(r) for r in table.itertuples()]
    return table.round(2)


def _write(table: pd.DataFrame, lead_cols: list[str], out_csv: str, out_md: str) -> None:
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    md = table.copy()
    md["top1_last"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(md.top1_last_mean, md.top1_last_std)]
    cols = lead_cols + [
        "ipc",
        "student",
        "protocol",
        "seeds",
        "top1_last",
        "top1_best_mean",
        "random_top1_last_mean",
        "gain_over_random",
        "teacher_top1",
    ]
    if md["hard_share_of_soft_gain"].notna().any():
        cols.append("hard_share_of_soft_gain")
    with atomic_path(out_md) as tmp:
        tmp.write_text(
            "Top-1 (%) on the real test split; last epoch is the headline, mean ± std "
            "over seeds.\n\n" + md[cols].to_markdown(index=False) + "\n"
        )


def write_tables(student_jsons: list[str], out_csv: str, out_md: str) -> pd.DataFrame:
    table = summarize(student_jsons)
    _write(table, ["dataset", "method"], out_csv, out_md)
    return table


def write_sweep_table(
    student_jsons: list[str], baseline_jsons: list[str], out_csv: str, out_md: str
) -> pd.DataFrame:
    """One row per sweep variant and IPC, with the varied keys as columns."""
    table = summarize(student_jsons + baseline_jsons)
    variants = {}
    for p in student_jsons:
        r = read_json(p)
        variants[r["method"]] = r["variant"]
    keys = sorted({k for v in variants.values() for k in v})
    table = table[table["method"].isin(variants)].copy()
    for k in keys:
        table.insert(2, k, [variants[m].get(k) for m in table["method"]])
    table = table.sort_values(keys + ["ipc"]).reset_index(drop=True)
    _write(table, keys, out_csv, out_md)
    return table


def protocol_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Methods (per IPC) down, label protocols across: top-1 mean ± std and, in brackets, the
    gain over the random subset under the same protocol; then the hard share of the soft gain."""
    order = [p for p in ("hard", "online", "hybrid") if p in set(table.protocol)]
    order += sorted(p for p in set(table.protocol) if p not in order)
    rows = {}
    for r in table.sort_values(["ipc", "kind", "method"]).itertuples():
        row = rows.setdefault(f"{r.method} (IPC {r.ipc})", {p: "" for p in order})
        gain = "" if r.kind == "random" else f" ({r.gain_over_random:+.2f})"
        row[r.protocol] = f"{r.top1_last_mean:.2f} ± {r.top1_last_std:.2f}{gain}"
        if r.kind != "random" and not math.isnan(r.hard_share_of_soft_gain):
            row["hard share of soft gain"] = f"{r.hard_share_of_soft_gain:.2f}"
    return pd.DataFrame.from_dict(rows, orient="index").fillna("")


def write_protocol_table(student_jsons: list[str], out_csv: str, out_md: str) -> pd.DataFrame:
    table = summarize(student_jsons)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    grid = protocol_grid(table)
    with atomic_path(out_md) as tmp:
        tmp.write_text(
            "Top-1 (%) at the last epoch, mean ± std over seeds, per label protocol; in brackets "
            "the gain over the random real subset under the same protocol. Hard share of soft "
            "gain: the gain over random under hard labels divided by the gain under online soft "
            "labels (blank when the soft gain is not positive).\n\n" + grid.to_markdown() + "\n"
        )
    return table


def _write_plain(table: pd.DataFrame, title: str, out_csv: str, out_md: str) -> None:
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_md) as tmp:
        tmp.write_text(f"{title}\n\n{table.to_markdown(index=False)}\n")


def write_diversity_table(diversity_jsons: list[str], out_csv: str, out_md: str) -> pd.DataFrame:
    rows = []
    for p in diversity_jsons:
        r = read_json(p)
        per_class = list(r["per_class"].values())
        rows.append(
            {
                "dataset": r["dataset"],
                "method": r["method"],
                "ipc": r["ipc"],
                "mean_cosine_to_centroid": r["mean_cosine_to_centroid"],
                "min_class": min(per_class),
                "max_class": max(per_class),
            }
        )
    table = pd.DataFrame(rows).sort_values(["ipc", "mean_cosine_to_centroid"]).round(4)
    _write_plain(
        table,
        "Mean cosine similarity of teacher penultimate features to their class "
        "centroid (lower = more diverse).",
        out_csv,
        out_md,
    )
    return table


def write_cost_table(
    student_jsons: list[str], teacher_metrics: str, out_csv: str, out_md: str
) -> pd.DataFrame:
    """Per method, IPC and label protocol: what it took to make the set and what a student
    needs beside it (label bytes, or the teacher at training time)."""
    rows = []
    for p in student_jsons:
        r = read_json(p)
        labels = r["labels"]
        rows.append(
            {
                "method": r["method"],
                "ipc": r["ipc"],
                "protocol": r["protocol"],  # with its label budget, as in the summary
                "recover_wall_s": r["distill_cost"].get("recover_wall_s", 0.0),
                "relabel_wall_s": r["distill_cost"].get("relabel_wall_s", 0.0),
                "image_iterations": r["distill_cost"].get("recover_image_iterations", 0),
                "image_bytes": r["distilled_image_bytes"],
                "label_bytes": labels.get("label_bytes", 0),
                "teacher_at_training": "yes" if labels["teacher_at_training"] else "no",
                "teacher_bytes": labels.get("teacher_bytes", 0),
                "student_wall_s": r["cost"]["wall_s"],
                "student_peak_rss_mb": r["cost"]["peak_rss_mb"],
                "device": r["cost"]["device"],
            }
        )
    first = [
        "recover_wall_s",
        "relabel_wall_s",
        "image_iterations",
        "image_bytes",
        "label_bytes",
        "teacher_at_training",
        "teacher_bytes",
        "device",
    ]
    table = (
        pd.DataFrame(rows)
        .groupby(["method", "ipc", "protocol"], sort=True)
        .agg(
            {
                **{c: "first" for c in first},
                "student_wall_s": "mean",
                "student_peak_rss_mb": "max",
            }
        )
        .reset_index()
        .round(2)
    )
    teacher = read_json(teacher_metrics)["cost"]
    _write_plain(
        table,
        f"Cost per method and label protocol (teacher, shared by all: {teacher['wall_s']:.0f} s "
        f"on {teacher['device']}, peak RSS {teacher['peak_rss_mb']:.0f} MB). Recovery time is "
        "summed over shards; label bytes are what a student reads beside the images (stored "
        "logits and their views at the budget, or class indices); a protocol that runs the "
        "teacher at training time needs its weights instead. Student time is the mean over seeds.",
        out_csv,
        out_md,
    )
    return table
