"""matplotlib figures as PNG bytes, drawn headless (the search and mixed-precision plots)."""

from __future__ import annotations

import io


def png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot keeps no reference)."""
    import matplotlib.pyplot as plt  # heavy: loaded by the first plot, not by import slimkit

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def outside_legend(ax) -> None:
    """The legend right of the axes, never over the data (png's tight bbox keeps it)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


__all__ = ["outside_legend", "png"]
