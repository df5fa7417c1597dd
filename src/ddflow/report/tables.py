"""Results tables: one row per (dataset, method, IPC, student, protocol) with seed statistics.

The headline is top-1 at the last epoch (no test-set model selection), with its 95% confidence
interval over synthesis x evaluation seeds and the variance split between them (report/stats.py);
beside it the test top-1 at the validation-selected epoch when the data has a validation split,
and best-seen (selected on test) only for comparison with the papers. Every row carries the
random real subset under the same recipe and the paired difference to it.
"""

from __future__ import annotations

import math

import pandas as pd

from ddflow.io import atomic_path, read_json
from ddflow.report.stats import matrix, nested, paired_difference

KEYS = ["dataset", "method", "kind", "ipc", "student", "protocol"]
# The soft-label protocol whose gain over the random subset hard labels are compared with.
SOFT_REFERENCE = "online"
BASELINE = "random"  # the default baseline's method name, preferred among random-kind methods


def _runs(student_jsons: list[str]) -> pd.DataFrame:
    runs = pd.DataFrame([read_json(p) for p in student_jsons])
    # a method's sets (synthesis seeds) share its name; a result without one is its only set
    runs["set"] = runs["set"].fillna(runs["method"]) if "set" in runs else runs["method"]
    for col in ("top1_val_selected", "val_top1_last", "params"):  # not in older results
        if col not in runs:
            runs[col] = math.nan
    return runs


def _baselines(runs: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """The random subset's runs per (dataset, ipc, student, protocol)."""
    random = runs[runs["kind"] == "random"]
    out = {}
    for key, g in random.groupby(["dataset", "ipc", "student", "protocol"], sort=True):
        names = sorted(set(g["method"]), key=lambda m: (m != BASELINE, m))
        out[key] = g[g["method"] == names[0]]
    return out


def summarize(student_jsons: list[str]) -> pd.DataFrame:
    runs = _runs(student_jsons)
    baselines = _baselines(runs)
    rows = []
    for key, g in runs.groupby(KEYS, sort=True):
        row = dict(zip(KEYS, key))
        est = nested(matrix(g)[0])
        base = baselines.get((row["dataset"], row["ipc"], row["student"], row["protocol"]))
        paired = None
        if base is not None and row["kind"] != "random":
            paired = paired_difference(g, base)
        row.update(
            sets=est.sets,
            seeds=est.seeds,
            top1_last_mean=est.mean,
            top1_last_std=est.std,
            top1_last_ci95_low=est.ci_low,
            top1_last_ci95_high=est.ci_high,
            ci_over=est.ci_over,
            sd_synth=est.sd_synth,
            sd_eval=est.sd_eval,
            top1_val_selected_mean=g["top1_val_selected"].mean(),
            val_top1_last_mean=g["val_top1_last"].mean(),
            top1_best_mean=g["top1_best"].mean(),
            teacher_top1=g["teacher_top1"].iloc[0],
            student_params=g["params"].iloc[0],
            random_top1_last_mean=nested(matrix(base)[0]).mean if base is not None else math.nan,
        )
        row["gain_over_random"] = row["top1_last_mean"] - row["random_top1_last_mean"]
        row["gain_ci95_low"] = paired.ci_low if paired else math.nan
        row["gain_ci95_high"] = paired.ci_high if paired else math.nan
        row["gain_p_value"] = paired.p_value if paired else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    # the share of a method's soft-label gain over random that survives under hard labels
    gain = table.set_index(["dataset", "method", "ipc", "student", "protocol"])["gain_over_random"]

    def share(r) -> float:
        hard = gain.get((r.dataset, r.method, r.ipc, r.student, "hard"), math.nan)
        soft = gain.get((r.dataset, r.method, r.ipc, r.student, SOFT_REFERENCE), math.nan)
        return hard / soft if r.kind != "random" and soft > 0 else math.nan

    table["hard_share_of_soft_gain"] = [share(r) for r in table.itertuples()]
    return table.round(2).assign(gain_p_value=table["gain_p_value"].round(4))


def _interval(lo: float, hi: float) -> str:
    return "–" if math.isnan(lo) else f"[{lo:.2f}, {hi:.2f}]"


def _write(
    table: pd.DataFrame, lead_cols: list[str], out_csv: str, out_md: str, head: str = ""
) -> None:
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    md = table.copy()
    md["top1_last"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(md.top1_last_mean, md.top1_last_std)]
    md["sets x seeds"] = [f"{a} x {b}" for a, b in zip(md.sets, md.seeds)]
    md["95% CI"] = [_interval(a, b) for a, b in zip(md.top1_last_ci95_low, md.top1_last_ci95_high)]
    md["sd set / eval"] = [
        "–" if math.isnan(a) else f"{a:.2f} / {b:.2f}" for a, b in zip(md.sd_synth, md.sd_eval)
    ]
    md["gain_over_random"] = [
        ""
        if r.kind == "random"
        else f"{r.gain_over_random:+.2f} {_interval(r.gain_ci95_low, r.gain_ci95_high)}"
        for r in md.itertuples()
    ]
    md["p"] = ["" if math.isnan(p) else f"{p:.3g}" for p in md.gain_p_value]
    md["hard_share_of_soft_gain"] = [
        "" if math.isnan(v) else f"{v:.2f}" for v in md.hard_share_of_soft_gain
    ]
    cols = lead_cols + ["ipc", "student", "protocol", "sets x seeds", "top1_last", "95% CI"]
    caption = [head, CAPTION["head"]] if head else [CAPTION["head"]]
    if (md["sets"] > 1).any():
        cols.append("sd set / eval")
        caption.append(CAPTION["split"])
    if md["top1_val_selected_mean"].notna().any():
        cols.append("top1_val_selected_mean")
        caption.append(CAPTION["val"])
    if "selected_on_val" in md:
        caption.append(CAPTION["sweep"])
    cols += ["top1_best_mean", "random_top1_last_mean", "gain_over_random", "p", "teacher_top1"]
    caption.append(CAPTION["tail"])
    if table["hard_share_of_soft_gain"].notna().any():
        cols.append("hard_share_of_soft_gain")
    with atomic_path(out_md) as tmp:
        tmp.write_text(" ".join(caption) + "\n\n" + md[cols].to_markdown(index=False) + "\n")


CAPTION = {
    "head": "Top-1 (%) on the real test split at the last epoch (the headline): mean ± std over "
    "all runs (sets x evaluation seeds) and its 95% confidence interval (a t interval over the "
    "sets when a method has several synthesis seeds, else over evaluation seeds, conditional on "
    "the one set).",
    "split": "sd set / eval: the spread split between synthesis and evaluation seeds.",
    "val": "top1_val_selected_mean: test top-1 at the epoch chosen on the validation split.",
    "sweep": "selected_on_val: the variant with the best last-epoch validation top-1 per IPC and "
    "protocol, the choice made without looking at test.",
    "tail": "top1_best_mean: the best test top-1 seen (selected on test, as the papers report). "
    "Gain over random: paired on evaluation seeds, with its 95% confidence interval; p: the "
    "two-sided p-value of no difference. Statistics: config/README.md, 'Statistics'.",
}


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
    if table["val_top1_last_mean"].notna().any():
        # the variant a user would pick: best validation top-1, never test top-1
        best = table.groupby(["ipc", "protocol"])["val_top1_last_mean"].transform("max")
        table["selected_on_val"] = table["val_top1_last_mean"] == best
        keys = keys + ["selected_on_val"]
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
                **{  # results written before recognition was measured have none
                    k: r["recognition"][k]
                    for k in ("classifier", "top1_global", "top1_crops")
                    if "recognition" in r
                },
            }
        )
    table = pd.DataFrame(rows).sort_values(["ipc", "mean_cosine_to_centroid"]).round(4)
    head = (
        "Mean cosine similarity of teacher penultimate features to their class "
        "centroid (lower = more diverse)."
    )
    if "top1_crops" in table:
        head += (
            " Recognition (CDA Table 9): the classifier's top-1 (%) on each set's whole images "
            "and on random crops (10 RandomResizedCrop boxes per image, scale 0.08-1, the "
            "mean); the random subset's row is real images."
        )
    _write_plain(table, head, out_csv, out_md)
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
                # the largest shard's peak: GPU memory on CUDA, else the process's RSS
                "recover_peak_mb": r["distill_cost"].get(
                    "recover_peak_gpu_mb", r["distill_cost"].get("recover_peak_rss_mb", 0.0)
                ),
                "image_bytes": r["distilled_image_bytes"],
                "label_bytes": labels.get("label_bytes", 0),
                "label_array_bytes": labels.get("label_array_bytes", 0),
                "full_label_bytes": labels.get("full_label_bytes", 0),
                "teacher_at_training": "yes" if labels["teacher_at_training"] else "no",
                "teacher_bytes": labels.get("teacher_bytes", 0),
                "student_wall_s": r["cost"]["wall_s"],
                "student_peak_rss_mb": r["cost"]["peak_rss_mb"],
                "device": r["cost"]["device"],
            }
        )
    # a method's sets (synthesis seeds) each cost their own recovery: the mean over them
    how = {"recover_wall_s": "mean", "relabel_wall_s": "mean", "image_iterations": "mean",
           "recover_peak_mb": "max", "student_wall_s": "mean",
           "student_peak_rss_mb": "max"}  # fmt: skip
    table = (
        pd.DataFrame(rows)
        .groupby(["method", "ipc", "protocol"], sort=True)
        .agg({c: how.get(c, "first") for c in rows[0] if c not in ("method", "ipc", "protocol")})
        .reset_index()
        .round(2)
    )
    table["image_iterations"] = table["image_iterations"].round().astype(int)  # a count
    teacher = read_json(teacher_metrics)["cost"]
    _write_plain(
        table,
        f"Cost per method and label protocol (teacher, shared by all: {teacher['wall_s']:.0f} s "
        f"on {teacher['device']}, peak RSS {teacher['peak_rss_mb']:.0f} MB). Recovery time is "
        "summed over shards, its peak memory is the largest shard's (GPU memory on CUDA, else "
        "the process's RSS); label bytes are what a student reads beside the images (stored "
        "logits and their views at the budget, or class indices); a protocol that runs the "
        "teacher at training time needs its weights instead. Student time is the mean over seeds.",
        out_csv,
        out_md,
    )
    return table


def write_budget_table(summary_csv: str, cost_csv: str, out_csv: str, out_md: str) -> pd.DataFrame:
    """The label-budget sweep: per method and IPC, each stored-label budget's top-1 beside the
    bytes of its label files on disk and how many times fewer their arrays are than FKD's full
    labels (LPLD's "40x"), with the random subset under the same budgets."""
    from ddflow.forecast import human_bytes

    summary = pd.read_csv(summary_csv)
    cost = pd.read_csv(cost_csv)
    cost = cost[cost["protocol"].str.startswith("stored")]
    keys = ["method", "ipc", "protocol"]
    cols = [c for c in ("top1_last_mean", "top1_last_std", "gain_over_random") if c in summary]
    sizes = ["label_bytes", "label_array_bytes", "full_label_bytes"]
    table = cost[[*keys, *sizes]].merge(summary[[*keys, *cols]], on=keys)
    table["fewer_bytes"] = (table["full_label_bytes"] / table["label_array_bytes"]).round(1)
    table = table.sort_values(["ipc", "method", "label_array_bytes"], ascending=[True, True, False])
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    cell = [
        f"{m:.2f} ± {s:.2f} ({human_bytes(b)}, {x:g}x)"
        for m, s, b, x in zip(
            table.top1_last_mean, table.top1_last_std.fillna(0), table.label_bytes,
            table.fewer_bytes,
        )
    ]  # fmt: skip
    wide = (
        table.assign(cell=cell, row=[f"{m} (IPC {i})" for m, i in zip(table.method, table.ipc)])
        .pivot(index="row", columns="protocol", values="cell")
        .reset_index()
        .rename(columns={"row": "method"})
    )
    order = table.groupby("protocol")["label_array_bytes"].max().sort_values(ascending=False)
    order = order.index
    wide = wide[["method", *order]]
    head = (
        "Label budgets: test top-1 (%) at the last epoch, mean ± std over runs, with the bytes "
        "of the label files the student reads on disk and how many times fewer their arrays "
        "are than FKD's full fp16 labels of every epoch (x; each file adds about 2-3 KB of "
        "array names, checksum and identity). Columns from the largest budget to the "
        "smallest; the random real subset is under the same budgets."
    )
    with atomic_path(out_md) as tmp:
        tmp.write_text(f"{head}\n\n{wide.to_markdown(index=False)}\n")
    return table


def write_incremental_table(
    incremental_jsons: list[str], out_csv: str, out_md: str
) -> pd.DataFrame:
    """Per method, IPC, protocol and step: top-1 on the seen classes, mean ± std over runs."""
    rows = []
    for p in incremental_jsons:
        r = read_json(p)
        run = {k: r[k] for k in ("method", "kind", "ipc", "protocol", "seed")}
        for s in r["steps"]:
            rows.append({**run, **{k: s[k] for k in ("step", "classes_seen", "top1")}})
    keys = ["method", "kind", "ipc", "protocol", "step", "classes_seen"]
    table = (
        pd.DataFrame(rows)
        .groupby(keys, sort=True)["top1"]
        .agg(runs="count", top1_mean="mean", top1_std="std")
        .reset_index()
        .fillna({"top1_std": 0.0})
        .round(2)
    )
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    cells = table.assign(
        cell=[f"{m:.2f} ± {s:.2f}" for m, s in zip(table.top1_mean, table.top1_std)],
        row=[f"{r.method} (IPC {r.ipc}, {r.protocol})" for r in table.itertuples()],
    )
    grid = cells.pivot(index="row", columns="classes_seen", values="cell").fillna("")
    grid.columns = [f"{c} classes" for c in grid.columns]
    grid.index.name = "method (IPC, label protocol)"
    with atomic_path(out_md) as tmp:
        tmp.write_text(
            "Class-incremental learning: top-1 (%) on the real test images of the classes seen so "
            "far, a fresh student per step trained on their distilled images, mean ± std over runs "
            "(sets x student seeds).\n\n" + grid.to_markdown() + "\n"
        )
    return table


def write_pruning_table(pruned_jsons: list[str], out_csv: str, out_md: str) -> pd.DataFrame:
    """The slimmed network retrained on each set: the summary's statistics (paired gain over the
    random subset included), with what slimming removed in the caption."""
    table = summarize(pruned_jsons)
    p = read_json(pruned_jsons[0])["pruning"]
    head = (
        f"Data-free slimming at ratio {p['ratio']:g} ({p['scope']} threshold): "
        f"{100 * p['channels_removed']:.1f}% of the "
        f"channels and {100 * p['params_removed']:.1f}% of the parameters removed "
        f"({p['params_before']:,} -> {p['params_after']:,}; channels per layer {p['channels']} of "
        f"{p['channels_before']}); top-1 right after surgery, before retraining: "
        f"{p['top1_after_surgery']:.2f}%"
        + (f" (unpruned: {p['top1_unpruned']:.2f}%)" if "top1_unpruned" in p else "")
        + ". Rows: the pruned network retrained from its kept weights on each distilled set, "
        "learning from its unpruned self."
    )
    _write(table, ["dataset", "method"], out_csv, out_md, head)
    return table
