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
