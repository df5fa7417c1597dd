"""Figures: a grid of distilled images per method, and student test curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ddflow.distilled import read_distilled  # noqa: E402
from ddflow.io import atomic_path, load_npz, read_json  # noqa: E402


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.rsplit(".", 1)[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)


# A class is flagged when, on average over its images, at least this share of an image's pixels
# lies within FLAT_LEVELS of the image's median: a recovery that collapsed to flat images (MNIST
# SRe2L's all-black class with a few specks) would otherwise pass unnoticed.
NEAR_CONSTANT_SHARE = 0.95
FLAT_LEVELS = 8


def near_constant_classes(images: np.ndarray, labels: np.ndarray, classes: list[str]) -> list[str]:
    """Classes whose images are, on average, almost entirely one grey level or colour."""
    flat = images.reshape(len(images), -1).astype(np.int16)
    median = np.median(flat, axis=1, keepdims=True)
    share = (np.abs(flat - median) <= FLAT_LEVELS).mean(axis=1)
    return [
        classes[c] for c in np.unique(labels) if share[labels == c].mean() >= NEAR_CONSTANT_SHARE
    ]


def grid_columns(
    labels: np.ndarray, steps: np.ndarray, max_ipc: int
) -> tuple[list[np.ndarray], list[str] | None]:
    """Per class, the images of the grid's columns, and the columns' headers. IPC order; or, when
    the images' optimisation steps differ (-1 = not recorded), longest-optimised first (ties keep
    IPC order) with the columns spread evenly from the longest to the shortest."""
    per_class = int(np.bincount(labels).min())
    cols = min(max_ipc, per_class)
    members = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
    if len(set(steps.tolist()) - {-1}) <= 1:
        return [m[:cols] for m in members], None
    ranks = np.unique(np.linspace(0, per_class - 1, cols).round().astype(int))
    ordered = [m[np.argsort(-steps[m], kind="stable")][ranks] for m in members]
    return ordered, [f"{steps[i]} it." for i in ordered[0]]


def image_grid(
    images_dir: str,
    manifest_path: str,
    out_png: str,
    title: str,
    max_classes: int = 10,
    max_ipc: int = 10,
) -> list[str]:
    """Rows = classes (by name), columns = IPC index; returns the near-constant classes, which
    the figure's title names too.

    When the set's images were optimised for different numbers of steps (DELT's EarlyLate rounds,
    recorded per image in the manifest), each row runs from the longest- to the shortest-optimised
    image, the columns spread over that range and headed by their steps (DELT Figures 6, 9-11:
    early images lose their initial patches, late ones keep them)."""
    classes = read_json(manifest_path)["classes"]
    images, labels, manifest = read_distilled(images_dir, manifest_path, classes)
    steps = np.array([f.get("iterations", -1) for f in manifest["files"]])
    flat = near_constant_classes(images, labels, classes)
    rows = list(range(min(len(classes), max_classes)))
    picks_of, headers = grid_columns(labels, steps, max_ipc)
    cols = len(picks_of[0])
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 0.9), squeeze=False)
    for k, head in enumerate(headers or []):
        axes[0][k].set_title(head, fontsize=6)
    for r in rows:
        picks = images[picks_of[r]]
        for k in range(cols):
            ax = axes[r][k]
            img = picks[k]
            ax.imshow(
                img.squeeze(-1) if img.shape[-1] == 1 else img,
                cmap="gray" if img.shape[-1] == 1 else None,
                vmin=0,
                vmax=255,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        warn = classes[r] in flat
        axes[r][0].set_ylabel(
            classes[r] + (" (flat!)" if warn else ""), rotation=0, ha="right", va="center",
            fontsize=7, color="red" if warn else "black",
        )  # fmt: skip
    if headers:
        title += "\nimages ordered from longest- to shortest-optimised (steps above each column)"
    if flat:
        title += f"\nwarning: near-constant images in class(es) {', '.join(flat[:8])}"
    fig.suptitle(title, fontsize=9, color="red" if flat else "black")
    _save(fig, out_png)
    return flat


def student_curves(student_jsons: list[str], out_png: str, title: str = "") -> None:
    """Test top-1 against epoch per (method, IPC, student, protocol): the mean over runs (sets x
    seeds) with a band from the lowest to the highest run; the teacher's top-1 and the random
    subset's last-epoch mean as levels."""
    runs: dict[tuple, list] = {}
    teacher = None
    for p in student_jsons:
        r = read_json(p)
        key = (r["method"], r["ipc"], r["student"], r.get("protocol", "online"))
        runs.setdefault(key, []).append(r["curve"])
        teacher = r.get("teacher_top1", teacher)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    several = len({k[3] for k in runs}) > 1
    for i, ((method, ipc, _, protocol), curves) in enumerate(sorted(runs.items())):
        pts = [[(p["epoch"], p["test_top1"]) for p in c if "test_top1" in p] for c in curves]
        epochs = [e for e, _ in pts[0]]
        values = np.array([[v for _, v in c] for c in pts])
        color = f"C{i % 10}"
        label = f"{method} IPC {ipc}" + (f", {protocol}" if several else "")
        label += f" ({len(curves)} runs)"
        if method == "random":
            level = f"random subset IPC {ipc}, last epoch" + (f", {protocol}" if several else "")
            ax.axhline(values[:, -1].mean(), color=color, ls="--", lw=1, label=level)
        ax.plot(epochs, values.mean(0), marker="o", ms=3, color=color, label=label)
        if len(curves) > 1:
            ax.fill_between(epochs, values.min(0), values.max(0), color=color, alpha=0.15, lw=0)
    if teacher is not None:
        ax.axhline(teacher, color="black", ls=":", lw=1, label=f"teacher {teacher:.2f}%")
    ax.set_xlabel("student epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title + ("\n" if title else "") + "mean over runs; band: lowest to highest run",
                 fontsize=8)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    _save(fig, out_png)


def label_bytes_figure(summary_csv: str, cost_csv: str, out_png: str) -> None:
    """Top-1 against the label bytes a student reads, per method and IPC: the hard labels and
    every stored-label budget as points; protocols that run the teacher are dashed, named levels."""
    import pandas as pd

    summary = pd.read_csv(summary_csv)
    cost = pd.read_csv(cost_csv)[
        ["method", "ipc", "protocol", "label_bytes", "teacher_at_training"]
    ]
    table = summary.merge(cost, on=["method", "ipc", "protocol"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, ((method, ipc), g) in enumerate(table.groupby(["method", "ipc"], sort=True)):
        color = f"C{i % 10}"
        stored = g[g["teacher_at_training"] == "no"].sort_values("label_bytes")
        ax.errorbar(
            stored["label_bytes"], stored["top1_last_mean"], yerr=stored["top1_last_std"],
            marker="o", ms=4, capsize=2, color=color, label=f"{method} IPC {ipc}",
        )  # fmt: skip
        for r in stored.itertuples():
            ax.annotate(r.protocol, (r.label_bytes, r.top1_last_mean), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        for r in g[g["teacher_at_training"] == "yes"].itertuples():
            ax.axhline(r.top1_last_mean, color=color, ls="--", lw=0.8)
            ax.annotate(
                r.protocol, (0.01, r.top1_last_mean), xycoords=("axes fraction", "data"),
                fontsize=6, color=color, xytext=(0, 2), textcoords="offset points",
            )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("label bytes read by the student (log scale; dashed: teacher run in training)")
    ax.set_ylabel("test top-1 (%), last epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out_png)


def has_curriculum(method: dict) -> bool:
    return method.get("crop_schedule", "constant") != "constant"


def crop_schedules(out_png: str, methods: dict[str, dict]) -> None:
    """CDA Figure 4 analog for this run: each curriculum method's RandomResizedCrop scale bounds
    against its own recovery steps; the dotted line marks its milestone."""
    from ddflow.recover.schedules import crop_scale_bounds

    fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 3), squeeze=False)
    for ax, (name, m) in zip(axes[0], methods.items()):
        total = m["iterations"]
        steps = np.arange(total)
        schedule = (m["crop_schedule"], m["milestone"], m["min_scale"], m["max_scale"])
        bounds = np.array([crop_scale_bounds(t, total, *schedule) for t in steps])
        ax.fill_between(steps, bounds[:, 0], bounds[:, 1], alpha=0.2, label="scale range sampled")
        ax.plot(steps, bounds[:, 0], label="lower bound")
        at = m["milestone"] * total
        ax.axvline(
            at, color="gray", ls=":", lw=1, label=f"milestone {m['milestone']:g} (step {at:g})"
        )
        ax.set_title(
            f"{name}: {m['crop_schedule']}, [{m['min_scale']:g}, {m['max_scale']:g}]", fontsize=9
        )
        ax.set_xlabel("recovery step")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("RandomResizedCrop scale")
    _save(fig, out_png)


def crop_boxes(out_png: str, methods: dict[str, dict], n: int = 30, size: int = 224, seed: int = 0):
    """CDA Figure 2 analog for this run: boxes a curriculum method samples at its first step,
    half-way to its milestone and at its end (rectangles: boxes on a size x size image; red dots:
    their centres)."""
    import random

    from matplotlib.patches import Rectangle

    from ddflow.recover.augment import sample_rrc_box
    from ddflow.recover.schedules import crop_scale_bounds

    rng = random.Random(seed)
    fig, axes = plt.subplots(len(methods), 3, figsize=(9, 3.2 * len(methods)), squeeze=False)
    for row, (name, m) in zip(axes, methods.items()):
        total = m["iterations"]
        for ax, step in zip(row, (0, int(m["milestone"] * total / 2), total - 1)):
            lo, hi = crop_scale_bounds(step, total, m["crop_schedule"], m["milestone"],
                                       m["min_scale"], m["max_scale"])  # fmt: skip
            for _ in range(n):
                top, left, h, w = sample_rrc_box(size, size, (lo, hi), rng)
                ax.add_patch(Rectangle((left, top), w, h, fill=False, lw=0.6, alpha=0.5))
                ax.plot(left + w / 2, top + h / 2, "r.", ms=3)
            ax.set_xlim(0, size)
            ax.set_ylim(size, 0)
            ax.set_aspect("equal")
            ax.set_title(f"{name}, step {step + 1}/{total}: scale [{lo:.2f}, {hi:.2f}]", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, out_png)


def sweep_keys(table) -> list[str]:
    """The keys a sweep varies (write_sweep_table puts them between the method and its kind),
    and the label protocol when there are several."""
    cols = list(table.columns)
    keys = cols[cols.index("method") + 1 : cols.index("kind")]
    return keys + (["protocol"] if table["protocol"].nunique() > 1 else [])


def sweep_plot(table_csv: str, out_png: str, title: str) -> None:
    """CDA Figure 5 analog: top-1 (last epoch, mean ± std) against a swept value.

    x = the numeric key with most values; one line per combination of the other keys;
    the random real subset under the same recipe as a dashed line.
    """
    import pandas as pd

    table = pd.read_csv(table_csv)
    keys = sweep_keys(table)
    numeric = [k for k in keys if pd.api.types.is_numeric_dtype(table[k])]
    fig, ax = plt.subplots(figsize=(6, 4))
    if numeric:
        x = max(numeric, key=lambda k: table[k].nunique())
        hue = [k for k in keys if k != x]
        groups = table.groupby(hue + ["ipc"]) if hue else table.groupby(["ipc"])
        for name, g in groups:
            g = g.sort_values(x)
            label = ", ".join(f"{k}={v}" for k, v in zip(hue + ["ipc"], np.atleast_1d(name)))
            ax.errorbar(
                g[x],
                g["top1_last_mean"],
                yerr=g["top1_last_std"],
                marker="o",
                capsize=3,
                label=label,
            )
        ax.set_xlabel(x)
    else:
        labels = [", ".join(f"{k}={r[k]}" for k in keys) for _, r in table.iterrows()]
        ax.bar(labels, table["top1_last_mean"], yerr=table["top1_last_std"], capsize=3)
        ax.tick_params(axis="x", rotation=30)
    several = table["protocol"].nunique() > 1
    levels = table.groupby(["ipc", "protocol"])["random_top1_last_mean"].first()
    for (ipc, protocol), value in levels.items():
        label = f"random real, IPC {ipc}" + (f", {protocol} labels" if several else "")
        ax.axhline(value, ls="--", c="gray", lw=1, label=label)
    ax.set_ylabel("test top-1, last epoch (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out_png)


def snapshots(npz_paths: list[str], methods: list[str], out_png: str) -> None:
    """CDA Figures 6/8 analog: one row per (method, class), one column per recovery step."""
    rows = []
    for path, method in zip(npz_paths, methods):
        z = load_npz(path, "steps", "images", "classes")
        steps, images, classes = z["steps"], z["images"], z["classes"]
        for ci, c in enumerate(classes):
            rows.append((f"{method}\nclass {c}", images[:, ci]))
    fig, axes = plt.subplots(
        len(rows), len(steps), squeeze=False, figsize=(len(steps) * 1.1, len(rows) * 1.2)
    )
    for r, (label, imgs) in enumerate(rows):
        for k, step in enumerate(steps):
            img = imgs[k]
            ax = axes[r][k]
            ax.imshow(
                img.squeeze(-1) if img.shape[-1] == 1 else img,
                cmap="gray" if img.shape[-1] == 1 else None,
                vmin=0,
                vmax=255,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {step}", fontsize=7)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    _save(fig, out_png)


def diversity_bars(diversity_jsons: list[str], out_png: str) -> None:
    """DELT Figure 2 (left) analog: per-class cosine to the class centroid, one bar group each."""
    runs = sorted((read_json(p) for p in diversity_jsons), key=lambda r: (r["ipc"], r["method"]))
    classes = sorted({int(c) for r in runs for c in r["per_class"]})
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6, len(classes) * 0.6), 4))
    for k, r in enumerate(runs):
        values = [r["per_class"].get(str(c), np.nan) for c in classes]
        ax.bar(
            np.arange(len(classes)) + k * width,
            values,
            width,
            label=f"{r['method']} IPC {r['ipc']} ({r['mean_cosine_to_centroid']:.3f})",
        )
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, [str(c) for c in classes])
    ax.set_xlabel("class")
    ax.set_ylabel("cosine to class centroid (lower = more diverse)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, out_png)


def incremental_figure(incremental_jsons: list[str], out_png: str) -> None:
    """Top-1 on the seen classes against the classes seen, per method (mean over runs, band
    from the lowest to the highest run): CDA Figure 7 / DELT Figure 8 analog."""
    runs: dict[tuple, list] = {}
    for p in incremental_jsons:
        r = read_json(p)
        runs.setdefault((r["method"], r["ipc"], r["protocol"]), []).append(r["steps"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    several = len({k[2] for k in runs}) > 1
    for i, ((method, ipc, protocol), steps) in enumerate(sorted(runs.items())):
        x = [s["classes_seen"] for s in steps[0]]
        y = np.array([[s["top1"] for s in run] for run in steps])
        color = f"C{i % 10}"
        label = (
            f"{method} IPC {ipc}" + (f", {protocol}" if several else "") + f" ({len(steps)} runs)"
        )
        ax.plot(x, y.mean(0), marker="o", ms=4, color=color, label=label,
                ls="--" if method == "random" else "-")  # fmt: skip
        if len(steps) > 1:
            ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.15, lw=0)
    ax.set_xlabel("classes seen")
    ax.set_ylabel("test top-1 on the seen classes (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out_png)
