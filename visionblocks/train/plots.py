"""Charts of ``visionblocks train`` and ``compare`` (matplotlib, imported on use; the ``train`` extra installs it)."""
from __future__ import annotations

from typing import Any, Sequence

from ..layers import write_all_or_none

__all__ = ["MATPLOTLIB_MISSING", "have_matplotlib", "plot_learning_curves", "pareto_front", "plot_compare"]

MATPLOTLIB_MISSING = "charts need matplotlib: pip install 'visionblocks[train]' (or 'visionblocks[plot]')"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> str:
    return write_all_or_none([(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))])[0]


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str, title: str = "") -> str:
    """Train and val loss, and val top-1 (and the EMA's), against the epoch."""
    plt = _pyplot()
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    a.plot(ep, [r["val_loss"] for r in history], "s-", label="val")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.grid(alpha=0.3)
    b.plot(ep, [r["val_top1"] for r in history], "o-", label="top-1")
    if history and history[0].get("ema_top1") is not None:
        b.plot(ep, [r["ema_top1"] for r in history], "s--", label="top-1 (EMA)")
    b.set_xlabel("epoch"), b.set_ylabel("val accuracy (%)"), b.legend(), b.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower x and higher y, at least one strictly), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_compare(rows: Sequence[dict[str, Any]], path: str, x: str = "infer_ms", title: str = "",
                 batch: int | None = None) -> str:
    """Top-1 against latency (of a batch of ``batch`` images when given), one point per variant (error bars: spread
    over seeds), the Pareto front joined and ringed."""
    plt = _pyplot()
    xs = [float(r[x]) for r in rows]
    ys = [float(r["top1"]) for r in rows]
    errs = [float(r.get("top1_std") or 0.0) for r in rows]
    front = pareto_front(list(zip(xs, ys)))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.errorbar(xs, ys, yerr=errs, fmt="o", color="tab:blue", capsize=3,
                label="variant" + (" (mean ± sd over seeds)" if any(errs) else ""))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "--o", color="tab:red", markersize=11,
            markerfacecolor="none", label="Pareto front (no variant faster and more accurate)")
    for r, xv, yv in zip(rows, xs, ys):
        ax.annotate(str(r["variant"]), (xv, yv), textcoords="offset points", xytext=(7, 5), fontsize=9)
    per = f"ms per batch of {batch}" if batch else "ms per batch"
    ax.set_xlabel({"infer_ms": f"inference latency ({per})", "train_ms": f"training step latency ({per})"}.get(x, x))
    ax.set_ylabel("val top-1 accuracy (%)")
    ax.margins(x=0.18, y=0.2)  # room for the labels of the points at the edges
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
