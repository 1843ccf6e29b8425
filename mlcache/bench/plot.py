"""Hit-ratio curves with matplotlib (the ``bench`` extra), imported only when asked for."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import ConfigurationError
from .simulate import BELADY, SimResult

__all__ = ["plot_hit_ratios"]


def plot_hit_ratios(
    results: Iterable[SimResult], path: str | os.PathLike[str], title: str, *, ax: object = None
) -> None:
    """Draw hit ratio against cache size, one line per policy (the Belady bounds dashed), into
    the PNG (or any format matplotlib knows from the extension) at ``path``; or, given ``ax``,
    into that matplotlib Axes and save nothing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise ConfigurationError(
            "plotting needs matplotlib: pip install 'mlcache[bench]'"
        ) from None
    by_policy: dict[str, list[SimResult]] = {}
    for r in results:
        by_policy.setdefault(r.policy, []).append(r)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for policy, rs in by_policy.items():
        rs.sort(key=lambda r: r.size)
        ax.plot(  # type: ignore[attr-defined]
            [r.size for r in rs], [r.hit_ratio for r in rs], marker="o", markersize=3,
            label=policy, linestyle="--" if policy in BELADY else "-",
        )  # fmt: skip
    ax.set_xscale("log")  # type: ignore[attr-defined]
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # type: ignore[attr-defined]
    ax.set_xlabel("cache size (objects)")  # type: ignore[attr-defined]
    ax.set_ylabel("hit ratio")  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    ax.grid(True, which="both", alpha=0.3)  # type: ignore[attr-defined]
    ax.legend(fontsize=7)  # type: ignore[attr-defined]
    if fig is not None:
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=120)
        plt.close(fig)
