"""Mutant plots: how quickly each scheduling strategy finds the seeded bugs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plots.data import MutantResult
from plots.style import strategy_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def detection(ax: Axes, results: tuple[MutantResult, ...]) -> Axes:
    """Bug variants detected within r rounds, one step curve per scheduling strategy."""
    strategies: list[str] = []
    for r in results:
        if r.strategy not in strategies:
            strategies.append(r.strategy)
    max_rounds = max([r.rounds for r in results] + [1])
    for i, strategy in enumerate(strategies):
        mine = [r for r in results if r.strategy == strategy]
        found = sorted(r.detected_at for r in mine if r.detected_at is not None)
        xs = [1, *found, max_rounds]
        ys = [0, *range(1, len(found) + 1), len(found)]
        ax.step(
            xs,
            ys,
            where="post",
            color=strategy_color(strategy, i),
            marker="o",
            markevery=list(range(1, len(found) + 1)),
            label=f"{strategy} ({len(found)}/{len(mine)} found)",
        )
    variants = len({r.variant for r in results})
    ax.set_xscale("log")
    ax.set_xlim(1, max_rounds * 1.1)
    ax.set_ylim(0, max(variants, 1) + 0.5)
    ax.set_title(f"Bug variants detected (of {variants}) within r rounds, per strategy")
    ax.set_xlabel("rounds r (log scale)")
    ax.set_ylabel("variants detected")
    if strategies:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no mutant results", transform=ax.transAxes, ha="center")
    return ax
