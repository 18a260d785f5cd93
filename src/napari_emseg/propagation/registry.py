"""The registry of propagation methods: one record per method, so no caller compares names.

A record says how to run the method and what it needs: a network (and so a device), the z
window it works in (blockwise chaining aligns its windows with one run's), whether the
supervoxel vote follows it, and the method options it takes beyond the common ones.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_emseg.models.cards import propagation_window


def _propagate_cconvlstm(*args, **kwargs) -> np.ndarray:
    # Imported on first use: torch and the network load only when this method runs.
    from napari_emseg.propagation.cconvlstm import propagate_cconvlstm

    return propagate_cconvlstm(*args, **kwargs)


def _propagate_watershed(*args, **kwargs) -> np.ndarray:
    from napari_emseg.propagation.watershed import propagate_watershed

    return propagate_watershed(*args, **kwargs)


def _propagate_agglomeration(*args, **kwargs) -> np.ndarray:
    from napari_emseg.propagation.agglomeration import propagate_agglomeration

    return propagate_agglomeration(*args, **kwargs)


@dataclass(frozen=True)
class Propagator:
    """A propagation method.

    Attributes
    ----------
    name : str
    run : callable
        ``run(image, labels, ref_slice, *, membrane, z_lo, z_hi, objects, progress, cancel,
        device, **options)`` returning the new labels.
    needs_network : bool
        It runs a network (needs a device; ``variant``/``weights`` choose it).
    window : int or callable
        Slices per z window, consecutive windows sharing one (1: slice by slice), or a function
        of the method options that gives it.
    vote : bool
        The supervoxel vote follows it (a method that is itself made of supervoxels needs none).
    options : tuple of str
        Method options beyond the common ones (``pixel_nm``, ``newcomers``).
    summary : str
        One line for help texts.
    """

    name: str
    run: Callable[..., np.ndarray]
    needs_network: bool = False
    window: int | Callable[[dict | None], int] = 1
    vote: bool = True
    options: tuple[str, ...] = ()
    summary: str = ""

    def stride(self, options: dict | None = None) -> int:
        """Slices from the start of one z window to the next (1: slice by slice).

        Examples
        --------
        >>> PROPAGATORS["cconvlstm"].stride(), PROPAGATORS["cconvlstm"].stride({"window": 3})
        (4, 2)
        >>> PROPAGATORS["cconvlstm"].stride({"pixel_nm": 10.0})  # the 20 nm card's 13 slices
        12
        >>> PROPAGATORS["watershed"].stride()
        1
        """
        window = self.window(options) if callable(self.window) else self.window
        return max(int((options or {}).get("window") or window) - 1, 1)


PROPAGATORS: dict[str, Propagator] = {
    "watershed": Propagator(
        "watershed",
        _propagate_watershed,
        summary="classical: each slice seeded from its neighbour's eroded masks (fast)",
    ),
    "cconvlstm": Propagator(
        "cconvlstm",
        _propagate_cconvlstm,
        needs_network=True,
        window=propagation_window,
        options=(
            "variant",
            "weights",
            "window",
            "patch",
            "overlap",
            "batch",
            "padded",
            "threads",
            "network_pixel_nm",
            "newcomer_min_size",
            "patch_min_area",
        ),
        summary="the consistent ConvLSTM, outlines on the membrane map (thick sections)",
    ),
    "agglomeration": Propagator(
        "agglomeration",
        _propagate_agglomeration,
        vote=False,
        options=("threshold", "sigma_nm", "hierarchy", "voxel_size", "merge_further"),
        summary="3D agglomeration of the membrane map named by the reference (FIB-SEM)",
    ),
}


def get_propagator(method: str) -> Propagator:
    """The record of a registered method; a one-line ``ValueError`` for anything else."""
    if method not in PROPAGATORS:
        raise ValueError(
            f"unknown propagation method {method!r}; choose one of: {', '.join(PROPAGATORS)}"
        )
    return PROPAGATORS[method]
