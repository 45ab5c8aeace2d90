"""Imported by the plot workers' forkserver (`stress.report._render`): matplotlib, the plot
modules, and one tiny figure drawn and encoded, so fonts and caches are loaded once and every
worker forked from the server starts warm."""

from plots import save

with save.style():
    _fig = save.new_figure(2.0, 1.5)
    _ax = _fig.add_subplot()
    _ax.bar([0, 1], [1, 2], label="warm")
    _ax.set_title("warm µs")
    _ax.legend()
    save.figure_bytes(_fig, "png")
    del _fig, _ax
