"""npe2 sample-data adapter: the project's own synthetic EM stack (no downloads)."""


def synthetic_em_sample() -> list[tuple]:
    """The synthetic neuropil stack and its (hidden) 3D ground truth as napari layer data."""
    from napari_emseg._reader import physical_space
    from napari_emseg.datasets.synthetic import make_synthetic_stack

    stack = make_synthetic_stack()
    meta = physical_space(stack.scale, "nm")
    return [
        (stack.image, {"name": "synthetic EM", **meta}, "image"),
        (stack.labels, {"name": "synthetic ground truth", "visible": False, **meta}, "labels"),
    ]
