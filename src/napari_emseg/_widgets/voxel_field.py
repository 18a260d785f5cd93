"""The "voxel size (nm)" field both widgets show for their image.

Prefilled from the image layer's scale (what the file recorded); a size typed here is what
every run on that image uses (the layer's display scale is left alone, so labels made
earlier stay aligned). Empty means unknown: the first run estimates it from the image and says
so; the field then shows the estimate as its grey placeholder ("estimated ...") and later runs
use it until a size is typed.
"""

from magicgui.widgets import LineEdit

from napari_emseg.pipeline import checked_voxel_size

PLACEHOLDER = "z y x, e.g. 50 4 4 (unknown: estimated at the first run)"


def parse_voxel_size(text: str) -> tuple[float, float, float] | None:
    """``"50 4 4"`` (spaces or commas) as (z, y, x) nm; None for an empty field.

    Examples
    --------
    >>> parse_voxel_size("50, 4 4"), parse_voxel_size("  ")
    ((50.0, 4.0, 4.0), None)
    >>> parse_voxel_size("4 4")
    Traceback (most recent call last):
    ...
    ValueError: voxel size: give three positive numbers in nm (z y x), e.g. 50 4 4
    """
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    try:
        return checked_voxel_size(float(p) for p in parts)
    except ValueError:  # a word that is not a number, or not three positive numbers
        raise ValueError(
            "voxel size: give three positive numbers in nm (z y x), e.g. 50 4 4"
        ) from None


def format_voxel_size(size) -> str:
    return "" if size is None else " ".join(f"{v:g}" for v in size)


class VoxelSizeField:
    """A line edit bound to the session's voxel size of the image chosen in a widget."""

    def __init__(self, session, image_choice, report, *, connect=None):
        self.session = session
        self.image_choice = image_choice
        self.report = report  # shows a one-line error in the widget's status
        self.widget = LineEdit(label="voxel (nm)")
        self.widget.native.setPlaceholderText(PLACEHOLDER)
        self.widget.tooltip = (
            "voxel size z y x in nm, from the file when it records one; empty: unknown "
            "(estimated from the image at the first run)"
        )
        self.widget.changed.connect(self._edited)
        image_choice.changed.connect(lambda _value: self.show())
        # ``connect`` is the owning widget's (disconnected when it closes).
        (connect or (lambda signal, slot: signal.connect(slot)))(
            session.voxel_size_changed, self._session_changed
        )
        self.show()

    def show(self) -> None:
        """Fill the field from the chosen image (typed size, else the file's)."""
        image = self.image_choice.value
        estimated = self.session.estimated_voxel_size(image)
        shown = None if estimated else self.session.voxel_size(image)
        text = format_voxel_size(shown)
        if self.widget.value != text:
            with self.widget.changed.blocked():
                self.widget.value = text
        placeholder = PLACEHOLDER
        if estimated:
            placeholder = f"estimated {format_voxel_size(estimated)} (type the true size)"
        self.widget.native.setPlaceholderText(placeholder)

    def _session_changed(self, image) -> None:
        if image is self.image_choice.value:
            self.show()

    def highlight(self) -> None:
        """Ask for the size: a red frame and the focus, until the user types in the field."""
        self.widget.native.setStyleSheet("border: 2px solid #e0503c;")
        self.widget.native.setFocus()

    def _edited(self, text: str) -> None:
        self.widget.native.setStyleSheet("")
        image = self.image_choice.value
        if image is None:
            return
        try:
            size = parse_voxel_size(text)
        except ValueError as error:
            self.report(str(error))
            return
        self.session.set_voxel_size(image, size)
        shown = format_voxel_size(size) or "unknown (estimated at the next run)"
        self.report(f"voxel size of {image.name}: {shown}")
