"""Pictures a researcher would otherwise draw by hand: faces on their photo, label shares by group.

In a notebook, :func:`show_faces` returns a PIL image (displayed inline) and :func:`plot_shares`
a matplotlib ``Axes``; both take what :func:`facescan.analyze` and :func:`facescan.to_dataframe`
return.
"""

from __future__ import annotations

from PIL import Image

from facescan.annotate import draw_result
from facescan.imageio import ImageSource
from facescan.schema import ImageResult


def show_faces(result: ImageResult, image: ImageSource | None = None, max_side: int | None = 1200) -> Image.Image:
    """The photo with each face boxed and captioned (number, labels and scores); ``image`` defaults
    to ``result.source`` read again, ``max_side`` shrinks large photos for the screen."""
    drawn = draw_result(image if image is not None else result.source, result)
    if max_side and max(drawn.size) > max_side:
        drawn.thumbnail((max_side, max_side))
    return drawn


def plot_shares(frame, attribute: str, by: str | None = None, ax=None, normalize: bool = True):
    """Bars of ``attribute``'s predicted labels (shares, or counts with ``normalize=False``), one
    group of bars per value of column ``by`` (e.g. ``gender``, or a column of your own), with n."""
    import matplotlib.pyplot as plt

    if attribute not in frame.columns:
        raise ValueError(f"no column {attribute!r}: analyze with that attribute first (columns: "
                         f"{', '.join(c for c in frame.columns if '_' not in c)})")
    rows = frame.dropna(subset=[attribute])
    if by is None:
        table = rows[attribute].value_counts(normalize=normalize, sort=False).to_frame(attribute).T
        sizes = {attribute: len(rows)}
    else:
        table = rows.groupby(by, observed=True)[attribute].value_counts(normalize=normalize).unstack(fill_value=0)
        sizes = rows.groupby(by, observed=True).size().to_dict()
    table.index = [f"{name} (n={sizes.get(name, 0)})" for name in table.index]
    ax = ax or plt.subplots(figsize=(7, 3.2))[1]
    table.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylabel("share of faces" if normalize else "faces")
    ax.set_title(f"{attribute}" + (f" by {by}" if by else ""), loc="left")
    ax.legend(title=attribute, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    ax.figure.tight_layout()
    return ax
