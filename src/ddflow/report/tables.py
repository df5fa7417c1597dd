"""Results tables: one row per (dataset, method, IPC, student) with seed statistics.

The headline is top-1 at the last epoch (no test-set model selection); best-seen is shown for
comparison with the papers, and every row carries the random real subset under the same recipe.
"""

from __future__ import annotations

import pandas as pd

from ddflow.io import atomic_path, read_json

KEYS = ["dataset", "method", "kind", "ipc", "student"]


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
    random = table[table["kind"] == "random"].set_index(["dataset", "ipc", "student"])
    table["random_top1_last_mean"] = [
        random["top1_last_mean"].get((r.dataset, r.ipc, r.student), float("nan"))
        for r in table.itertuples()
    ]
    return table.round(2)


def _write(table: pd.DataFrame, lead_cols: list[str], out_csv: str, out_md: str) -> None:
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    md = table.copy()
    md["top1_last"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(md.top1_last_mean, md.top1_last_std)]
    cols = lead_cols + [
        "ipc",
        "student",
        "seeds",
        "top1_last",
        "top1_best_mean",
        "random_top1_last_mean",
        "teacher_top1",
    ]
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
    rows = []
    for p in student_jsons:
        r = read_json(p)
        rows.append(
            {
                "method": r["method"],
                "ipc": r["ipc"],
                "recover_wall_s": r["distill_cost"].get("recover_wall_s", 0.0),
                "image_iterations": r["distill_cost"].get("recover_image_iterations", 0),
                "image_bytes": r["distilled_image_bytes"],
                "online_teacher_bytes": r["label_storage"]["online_teacher_bytes"],
                "stored_fp16_label_bytes": r["label_storage"]["stored_fp16_logits_bytes"],
                "student_wall_s": r["cost"]["wall_s"],
                "student_peak_rss_mb": r["cost"]["peak_rss_mb"],
                "device": r["cost"]["device"],
            }
        )
    table = (
        pd.DataFrame(rows)
        .groupby(["method", "ipc"], sort=True)
        .agg(
            {
                **{
                    c: "first"
                    for c in [
                        "recover_wall_s",
                        "image_iterations",
                        "image_bytes",
                        "online_teacher_bytes",
                        "stored_fp16_label_bytes",
                        "device",
                    ]
                },
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
        f"Cost per method (teacher, shared by all: {teacher['wall_s']:.0f} s on "
        f"{teacher['device']}, peak RSS {teacher['peak_rss_mb']:.0f} MB). Recovery time "
        "is summed over shards; student time is the mean over seeds.",
        out_csv,
        out_md,
    )
    return table
