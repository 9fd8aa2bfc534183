"""The report's figures, drawn with matplotlib (Agg) and returned as ``data:`` URIs of PNGs.

Every figure takes numbers the store already holds; nothing here scores or trains. Embedding the
PNGs keeps report.html one file that opens from disk with no network.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, and no GUI toolkit imported on a headless machine

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from unlearnkit.metrics.epsilon import EPSILON_CAP
from unlearnkit.metrics.forgetting import epsilon_bins

DPI = 90
UNLEARNED_COLOR = "#d95f02"
RETRAINED_COLOR = "#1b9e77"
CEILING_COLOR = "#7570b3"


def data_uri(fig: Figure) -> str:
    """``fig`` as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _show_image(ax, image: np.ndarray) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def epsilon_bars(eps: np.ndarray, n_models: int) -> tuple[list[str], np.ndarray]:
    """Bar labels and counts of per-example ε in the score's point bins, plus one overflow bar.

    Bin k, ``[0.5 k, 0.5 k + 0.5)``, earns ``2^-k`` points; the last bar (up to the cap, 50) earns none.
    """
    edges = epsilon_bins(n_models)
    n_bins = len(edges) - 1
    k = np.minimum(np.floor(np.asarray(eps, dtype=np.float64) / 0.5), n_bins).astype(np.int64)
    counts = np.bincount(k, minlength=n_bins + 1)
    labels = [f"[{edges[i]:g}, {edges[i + 1]:g})" for i in range(n_bins)] + [f"≥ {edges[-1]:g}"]
    return labels, counts


def epsilon_histogram(name: str, eps: np.ndarray, ceiling: np.ndarray | None, n_models: int) -> str:
    """Per-example ε of ``name`` against the ceiling row's, as a fraction of the forget examples per bin."""
    labels, counts = epsilon_bars(eps, n_models)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    width = 0.4 if ceiling is not None else 0.7
    ax.bar(x - (width / 2 if ceiling is not None else 0), counts / max(len(eps), 1), width,
           color=UNLEARNED_COLOR, label=name)
    if ceiling is not None:
        _, c_counts = epsilon_bars(ceiling, n_models)
        ax.bar(x + width / 2, c_counts / max(len(ceiling), 1), width, color=CEILING_COLOR, label="retrain (ceiling)")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel(f"per-example ε (points 1, 1/2, 1/4, ...; last bar: 0 points, up to the cap {EPSILON_CAP:g})", fontsize=8)
    ax.set_ylabel("fraction of forget examples", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return data_uri(fig)


def output_distributions(name: str, panels: list[dict]) -> str:
    """The proposal's Figure 1: retrained vs unlearned logit-scaled confidence of a few forget examples.

    Args:
        name: The method.
        panels: One per example, each with ``title`` (str), ``image`` ([H, W, C] uint8),
            ``retrained`` and ``unlearned`` (the statistic under each of the N models per side).
    """
    fig, axes = plt.subplots(2, len(panels), figsize=(3.0 * len(panels), 4.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.5]})
    for j, panel in enumerate(panels):
        _show_image(axes[0, j], panel["image"])
        axes[0, j].set_title(panel["title"], fontsize=8)
        ax = axes[1, j]
        r, u = np.asarray(panel["retrained"], float), np.asarray(panel["unlearned"], float)
        both = np.concatenate([r, u])
        lo, hi = float(both.min()), float(both.max())
        pad = max(0.05 * (hi - lo), 0.25)
        bins = np.linspace(lo - pad, hi + pad, 16)
        ax.hist(r, bins=bins, color=RETRAINED_COLOR, alpha=0.55, label=f"retrained (N={len(r)})")
        ax.hist(u, bins=bins, color=UNLEARNED_COLOR, alpha=0.55, label=f"{name} (N={len(u)})")
        # The individual models as ticks: at small N a histogram hides how few values there are.
        top = ax.get_ylim()[1]
        ax.plot(r, np.full_like(r, -0.06 * top), "|", color=RETRAINED_COLOR, ms=9, clip_on=False)
        ax.plot(u, np.full_like(u, -0.12 * top), "|", color=UNLEARNED_COLOR, ms=9, clip_on=False)
        ax.set_ylim(-0.16 * top, top)
        ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= top and float(t).is_integer()])
        ax.set_xlabel("logit-scaled confidence", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
        if j == 0:
            ax.set_ylabel("models", fontsize=8)
            ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return data_uri(fig)


# Where a marker's label may go, in points from the marker (x, y, horizontal alignment), tried in
# order: right of it, then above and below, then left. A label line is about 10 points.
LABEL_SLOTS = tuple((dx, dy, ha) for dx, ha in ((6, "left"), (-6, "right")) for dy in (-3, 7, -13, 17, -23))


def _label_offsets(points: list[dict]) -> dict[str, tuple[float, float, str] | None]:
    """Per row, where its label goes beside its marker (see LABEL_SLOTS), or None where every slot
    would overprint a label already placed (the marker is then numbered and named in a key)."""
    xs = [p["test"] for p in points]
    ys = [p["forget_quality"] for p in points]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    # Boxes in units of the plot's size (about 300 x 200 points): a label is about a quarter of the
    # width long and a twentieth of the height tall.
    placed: list[tuple[float, float, float]] = []  # (left, right, middle height) of each placed label
    out: dict[str, tuple[float, float, str] | None] = {}
    for p in sorted(points, key=lambda q: (-q["forget_quality"], q["test"])):
        x, y = (p["test"] - min(xs)) / span_x, (p["forget_quality"] - min(ys)) / span_y
        out[p["name"]] = None
        for dx, dy, ha in LABEL_SLOTS:
            lx, ly = x + dx / 300, y + dy / 200
            left, right = (lx, lx + 0.25) if ha == "left" else (lx - 0.25, lx)
            if not any(left < r and l < right and abs(ly - m) < 0.05 for l, r, m in placed):
                placed.append((left, right, ly))
                out[p["name"]] = (dx, dy, ha)
                break
    return out


def forgetting_vs_utility(points: list[dict], retrain_test: float | None, ceiling_f: float | None) -> str:
    """F against test accuracy, one marker per row, marker area proportional to its cost x retrain.

    Args:
        points: One per leaderboard row: ``name``, ``forget_quality``, ``test``, ``cost_ratio``
            (compute x retrain, or time x retrain where compute was not counted; None: drawn at the
            smallest size) and ``ceiling`` (bool).
        retrain_test: The references' test accuracy (a dashed vertical line), if known.
        ceiling_f: The ceiling's F (a dashed horizontal line), if known.
    """
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    offsets = _label_offsets(points)
    crowded = [p["name"] for p in points if offsets[p["name"]] is None]
    for p in points:
        ratio = p["cost_ratio"] if p["cost_ratio"] is not None else 0.0
        size = 30 + 250 * min(max(ratio, 0.0), 3.0)
        color = CEILING_COLOR if p["ceiling"] else UNLEARNED_COLOR
        ax.scatter([p["test"]], [p["forget_quality"]], s=size, color=color, alpha=0.6, edgecolors="black",
                   linewidths=0.5, marker="*" if p["ceiling"] else "o")
        slot = offsets[p["name"]]
        if slot is None:
            ax.annotate(str(crowded.index(p["name"]) + 1), (p["test"], p["forget_quality"]), xytext=(0, 0),
                        textcoords="offset points", fontsize=6, ha="center", va="center")
        else:
            ax.annotate(p["name"], (p["test"], p["forget_quality"]), xytext=slot[:2], textcoords="offset points",
                        fontsize=8, ha=slot[2], va="center")
    top = max([p["forget_quality"] for p in points] + [ceiling_f or 0.0])
    ax.set_ylim(0, min(1.05, max(0.05, 1.2 * top)))
    ax.margins(x=0.15)
    if retrain_test is not None:
        ax.axvline(retrain_test, color="gray", ls="--", lw=0.8)
        ax.annotate("references' test acc", (retrain_test, 0), xytext=(3, 3), textcoords="offset points",
                    fontsize=7, color="gray", rotation=90, va="bottom")
    if ceiling_f is not None:
        ax.axhline(ceiling_f, color=CEILING_COLOR, ls="--", lw=0.8)
    ax.set_xlabel("test accuracy (mean over seeds)", fontsize=8)
    ax.set_ylabel("F, forgetting quality (compat)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("marker area ∝ compute × retrain (time where not counted)", fontsize=8)
    if crowded:
        # Markers too crowded to name beside them carry a number; the key lists them.
        key = "\n".join(f"{i}  {name}" for i, name in enumerate(crowded, 1))
        ax.text(1.02, 1.0, key, transform=ax.transAxes, fontsize=7, va="top", ha="left")
        fig.set_size_inches(5.6 + 1.4, 3.8)
    fig.tight_layout()
    return data_uri(fig)


def compare_scores(benches: list[str], methods: list[str], scores: np.ndarray) -> str:
    """Grouped bars: each method's score (rows of ``scores``) in each bench (columns; NaN: absent)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(methods) * max(1, len(benches)) ** 0.5 + 2), 3.0))
    width = 0.8 / max(len(benches), 1)
    x = np.arange(len(methods))
    for b, label in enumerate(benches):
        ax.bar(x + (b - (len(benches) - 1) / 2) * width, np.nan_to_num(scores[:, b]), width, label=label)
    ax.set_xticks(x, methods, fontsize=8, rotation=20, ha="right")
    ax.set_ylabel("score", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return data_uri(fig)
