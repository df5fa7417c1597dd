"""Figures: a grid of distilled images per method, and student test curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ddflow.distilled import read_distilled  # noqa: E402
from ddflow.io import atomic_path, read_json  # noqa: E402


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.rsplit(".", 1)[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)


def image_grid(
    images_dir: str,
    manifest_path: str,
    out_png: str,
    title: str,
    max_classes: int = 10,
    max_ipc: int = 10,
) -> None:
    """Rows = classes, columns = IPC index."""
    classes = read_json(manifest_path)["classes"]
    images, labels, _ = read_distilled(images_dir, manifest_path, classes)
    rows = list(range(min(len(classes), max_classes)))
    cols = min(max_ipc, int(np.bincount(labels).min()))
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 0.9), squeeze=False)
    for r in rows:
        picks = images[labels == r][:cols]
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
        axes[r][0].set_ylabel(classes[r], rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, out_png)


def student_curves(student_jsons: list[str], out_png: str) -> None:
    """Test top-1 against epoch, mean over seeds, one line per (method, IPC, student)."""
    runs: dict[tuple, list] = {}
    for p in student_jsons:
        r = read_json(p)
        runs.setdefault((r["method"], r["ipc"], r["student"]), []).append(r["curve"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for (method, ipc, student), curves in sorted(runs.items()):
        pts = [[(p["epoch"], p["test_top1"]) for p in c if "test_top1" in p] for c in curves]
        epochs = [e for e, _ in pts[0]]
        mean = np.mean([[v for _, v in c] for c in pts], axis=0)
        ax.plot(
            epochs,
            mean,
            marker="o",
            ms=3,
            label=f"{method} IPC {ipc} ({student}, {len(curves)} seeds)",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out_png)
