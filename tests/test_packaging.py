"""The plugin registers from an editable install and from a built wheel."""

import importlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "src" / "napari_emseg" / "napari.yaml"


def python_names() -> list[str]:
    manifest = yaml.safe_load(MANIFEST.read_text())
    return [command["python_name"] for command in manifest["contributions"]["commands"]]


def test_there_is_one_manifest_and_it_is_shipped_in_the_package():
    from importlib import resources

    shipped = resources.files("napari_emseg") / "napari.yaml"
    assert shipped.read_text() == MANIFEST.read_text()
    root = REPO / "napari.yaml"  # a link for readers of the repository, not a second copy
    assert root.is_symlink() and root.resolve() == MANIFEST.resolve()


def test_the_engine_installs_and_runs_without_napari_or_qt():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    gui = ("napari", "npe2", "magicgui", "qtpy", "pyqt", "pyside")
    assert not [d for d in project["dependencies"] if d.lower().startswith(gui)]
    assert "napari" in " ".join(project["optional-dependencies"]["napari"])
    code = (
        "import sys; import napari_emseg.cli.program, napari_emseg.pipeline, "
        "napari_emseg.proofreading, napari_emseg.blockwise.run, napari_emseg.training; "
        "print(sorted(m for m in ('napari', 'qtpy', 'magicgui') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_headless_install_has_no_cloud_stack_and_plots_are_an_extra():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert not [name for name in ("ome-zarr", "fsspec", "aiohttp", "s3fs", "dask") if name in base]
    extras = project["optional-dependencies"]
    assert any(d.startswith("matplotlib") for d in extras["plot"])
    assert "plot" in extras["all"][0]
    # OME-Zarr is written (CLI, widget export) without ome-zarr-py.
    code = (
        "import sys, numpy as np; from napari_emseg.io.ngff import write_ngff; "
        "from napari_emseg.proofreading import write_ome_zarr; "
        "write_ngff(sys.argv[1], labels=np.ones((1, 8, 8), np.uint16)); "
        "print(sorted(m for m in ('ome_zarr', 'aiohttp', 's3fs') if m in sys.modules))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", code, f"{tmp}/x.zarr"],
            capture_output=True,
            text=True,
            check=True,
        )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("python_name", python_names())
def test_every_python_name_in_the_manifest_imports(python_name):
    module, attribute = python_name.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.slow
def test_npe2_validates_the_installed_plugin():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-emseg", "--imports"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


@pytest.mark.slow
def test_built_wheel_ships_and_registers_the_manifest(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel = next(tmp_path.glob("napari_emseg-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert archive.read("napari_emseg/napari.yaml").decode() == MANIFEST.read_text()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert "napari-emseg = napari_emseg:napari.yaml" in entry_points.decode()
    assert not any("/weights/" in n and not n.endswith((".pt", ".json")) for n in names)
    assert "napari_emseg/py.typed" in names  # type checkers read the package's annotations

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    # Validate the wheel's own manifest, importing its python_names from the wheel's files.
    script = (
        "import sys, napari_emseg; "
        f"assert napari_emseg.__file__.startswith({str(site)!r}), napari_emseg.__file__; "
        "from npe2.cli import main; sys.argv = ['npe2', 'validate', "
        f"{str(site / 'napari_emseg' / 'napari.yaml')!r}, '--imports']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_keybindings_are_the_widget_shortcuts():
    from napari_emseg._widgets.shortcuts import SHORTCUTS

    manifest = yaml.safe_load(MANIFEST.read_text())["contributions"]
    bound = {b["key"]: b["command"] for b in manifest["keybindings"]}
    expected = {k.replace("-", "+"): f"napari-emseg.{m}" for k, (_, m) in SHORTCUTS.items()}
    assert bound == expected
