"""The timeline plot: each track's smoothed emotion probabilities over time (Matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runtime.errors import BackendUnavailableError
from .outputs import TrackStats

#: At most this many tracks are plotted (those seen in the most frames).
MAX_PLOTTED_TRACKS = 8


def plot_timeline(tracks: dict[int, TrackStats], emotions: tuple[str, ...], path: Path,
                  *, title: str = "") -> None:
    """One panel per track, a line per emotion; saved as PNG to ``path``."""
    try:
        import matplotlib
    except ImportError:
        raise BackendUnavailableError("--plot needs Matplotlib; install it with: "
                                      "pip install 'emotion-edge[video]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(sorted(tracks.values(), key=lambda t: -len(t.times))[:MAX_PLOTTED_TRACKS],
                   key=lambda t: t.track_id)
    panels = max(1, len(shown))
    fig, axes = plt.subplots(panels, 1, figsize=(9, 1.2 + 1.9 * panels), sharex=True,
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, track in zip(axes[:, 0], shown, strict=False):
        values = np.array(track.smoothed)
        for k, emotion in enumerate(emotions):
            ax.plot(track.times, values[:, k], color=colours(k), lw=1.4, label=emotion)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"track {track.track_id}")
        ax.grid(alpha=0.3)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title or "Smoothed emotion probabilities per track")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
