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


__all__ = ["png"]
