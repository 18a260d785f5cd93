import pytest

from napari_emseg.cli import main


@pytest.fixture(scope="package")
def segmented(isbi_crop, tmp_path_factory):
    """`segment` of the ISBI crop with the default model: (labels.tif, membrane.tif)."""
    out = tmp_path_factory.mktemp("seg")
    labels, membrane = out / "labels.tif", out / "membrane.tif"
    argv = ["segment", str(isbi_crop), "-o", str(labels), "--membrane-out", str(membrane)]
    assert main([*argv, "--quiet"]) == 0
    return labels, membrane
