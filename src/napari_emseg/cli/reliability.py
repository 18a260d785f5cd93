"""The CLI fed every kind of bad input we know of: each case's exit status and last message.

:func:`report_table` runs the real ``napari-emseg`` entry point in-process on files made in a
temporary folder; ``scripts/reliability_report.py`` writes the table into docs/reliability.md
and tests/cli/test_docs.py regenerates it and compares, so the document cannot drift.
"""

import contextlib
import errno
import io
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import tifffile

from napari_emseg.cli import main

BEGIN, END = "<!-- cases: made by scripts/reliability_report.py -->", "<!-- /cases -->"


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("always")  # what a user sees, also under pytest's "error" filter
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
    lines = [line for line in err.getvalue().strip().splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def make_inputs(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (3, 64, 64), dtype=np.uint8)
    paths = {name: folder / name for name in ("good.tif",)}
    tifffile.imwrite(paths["good.tif"], stack, imagej=True, metadata={"axes": "ZYX"})
    good = paths["good.tif"].read_bytes()

    def write(name: str, data) -> None:
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            tifffile.imwrite(path, data, photometric="minisblack")
        paths[name] = path

    write("empty.tif", b"")
    write("truncated.tif", good[: len(good) // 2])
    write("random-bytes.tif", rng.integers(0, 255, 5000, dtype=np.uint8).tobytes())
    write("notes.tif", b"these are my notes, not an image")
    write("image.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    write("slice-2d.tif", stack[0])
    grey_rgb = np.repeat(stack[..., None], 3, axis=-1)
    tifffile.imwrite(folder / "grey-rgb.tif", grey_rgb, photometric="rgb")
    paths["grey-rgb.tif"] = folder / "grey-rgb.tif"
    colour = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(folder / "colour-rgb.tif", colour, photometric="rgb")
    paths["colour-rgb.tif"] = folder / "colour-rgb.tif"
    tifffile.imwrite(
        folder / "zcyx-4d.tif",
        rng.random((3, 2, 32, 32), np.float32),
        imagej=True,
        metadata={"axes": "ZCYX"},
    )
    paths["zcyx-4d.tif"] = folder / "zcyx-4d.tif"
    write("tczyx-5d.tif", rng.random((2, 2, 3, 16, 16)).astype(np.float32))
    nan_stack = stack.astype(np.float32)
    nan_stack[0, :5] = np.nan
    nan_stack[1, :5] = np.inf
    write("nan-inf-float.tif", nan_stack)
    write("uint16.tif", (stack.astype(np.uint16) * 200))
    write("int64.tif", stack.astype(np.int64) - 100)
    write("float64.tif", stack.astype(np.float64) / 255)
    write("zero-sized.tif", np.zeros((3, 0, 64), np.uint8))
    write("labels-wrong-shape.tif", np.ones((3, 32, 32), np.uint16))
    big_ids = np.arange(3 * 64 * 64, dtype=np.uint32).reshape(3, 64, 64) + 70000
    write("labels-big-ids.tif", big_ids)
    with h5py.File(folder / "two-datasets.h5", "w") as handle:
        handle["raw"] = stack
        handle["labels"] = stack.astype(np.uint16)
    paths["two-datasets.h5"] = folder / "two-datasets.h5"
    (folder / "empty-folder").mkdir()
    paths["empty-folder"] = folder / "empty-folder"
    mixed = folder / "mixed-slices"
    mixed.mkdir()
    tifffile.imwrite(mixed / "s1.tif", stack[0])
    tifffile.imwrite(mixed / "s2.tif", stack[0, :32])
    paths["mixed-slices"] = mixed
    return paths


def cases(p: dict[str, Path], out: Path) -> list[tuple[str, list[str]]]:
    """(case, argv): every run is --quiet, so the last stderr line is the message."""
    seg = ["segment"]
    # A voxel size, so that a warning about the data is not hidden by one about the size.
    o = ["-o", str(out / "out.tif"), "--quiet", "--model", "ridge", "--voxel-size", "50", "4", "4"]
    good = str(p["good.tif"])
    propagate = ["propagate", good, "--ref-slice", "1", *o[2:]]
    return [
        ("missing input file", [*seg, str(p["good.tif"].with_name("missing.tif")), *o]),
        ("empty file (0 bytes)", [*seg, str(p["empty.tif"]), *o]),
        ("truncated TIFF", [*seg, str(p["truncated.tif"]), *o]),
        ("random bytes named .tif", [*seg, str(p["random-bytes.tif"]), *o]),
        ("text file named .tif", [*seg, str(p["notes.tif"]), *o]),
        ("unsupported extension (.jpg)", [*seg, str(p["image.jpg"]), *o]),
        ("2D image (one slice)", [*seg, str(p["slice-2d.tif"]), *o]),
        ("RGB stack, grey in effect", [*seg, str(p["grey-rgb.tif"]), *o]),
        ("RGB colour stack", [*seg, str(p["colour-rgb.tif"]), *o]),
        ("4D (Z,C,Y,X)", [*seg, str(p["zcyx-4d.tif"]), *o]),
        ("5D array", [*seg, str(p["tczyx-5d.tif"]), *o]),
        ("float32 with NaN and Inf", [*seg, str(p["nan-inf-float.tif"]), *o]),
        ("uint16 image", [*seg, str(p["uint16.tif"]), *o]),
        ("int64 image with negatives", [*seg, str(p["int64.tif"]), *o]),
        ("float64 image", [*seg, str(p["float64.tif"]), *o]),
        ("zero-sized dimension", [*seg, str(p["zero-sized.tif"]), *o]),
        ("HDF5 with two datasets, none named", [*seg, str(p["two-datasets.h5"]), *o]),
        ("HDF5 dataset that does not exist", [*seg, f"{p['two-datasets.h5']}:/nope", *o]),
        ("empty folder", [*seg, str(p["empty-folder"]), *o]),
        ("folder of slices of different sizes", [*seg, str(p["mixed-slices"]), *o]),
        (
            "labels/image shape mismatch",
            [*propagate, "--labels", str(p["labels-wrong-shape.tif"]), "-o", str(out / "x.tif")],
        ),
        (
            "reference slice out of range",
            ["propagate", good, "--labels", str(p["slice-2d.tif"]), "--ref-slice", "5", *o[:3]],
        ),
        (
            "ids beyond uint16 (written as uint32)",
            [*propagate, "--labels", str(p["labels-big-ids.tif"]), "-o", str(out / "big-ids.tif")],
        ),
        (
            "unknown propagation variant",
            [*propagate, "--labels", good, "-o", str(out / "x.tif"), "--variant", "foo"],
        ),
        ("a required option missing", [*seg, good, "--quiet"]),
        ("voxel size of zero", [*seg, good, *o, "--voxel-size", "40", "0", "8"]),
        ("voxel size not a number", [*seg, good, *o, "--voxel-size", "40", "four", "4"]),
        ("unknown model", [*seg, good, *o[:3], "--model", "sam"]),
        ("unknown device", [*seg, good, *o, "--device", "tpu"]),
        ("GPU asked for, none present", [*seg, good, *o, "--device", "cuda"]),
        (
            "output folder does not exist",
            [*seg, good, "-o", str(out / "no" / "such" / "x.tif"), *o[2:]],
        ),
        ("output folder not writable (/proc)", [*seg, good, "-o", "/proc/emseg-out.tif", *o[2:]]),
        ("output exists, no --overwrite", [*seg, good, "-o", str(p["uint16.tif"]), *o[2:]]),
        ("output is neither .tif nor .zarr", [*seg, good, "-o", str(out / "x.png"), *o[2:]]),
        (
            "--with-image with a TIFF output",
            [*seg, good, *o, "--with-image"],
        ),
        ("blockwise options with a TIFF output", [*seg, good, *o, "--block", "2", "64", "64"]),
    ]


def full_disk_case(p: dict[str, Path], out: Path) -> tuple[int, str, bool]:
    """The second of two outputs hits a full disk: both old files stay, no temporary is left."""
    labels, membrane = out / "kept.tif", out / "kept-membrane.tif"
    labels.write_bytes(b"previous labels")
    membrane.write_bytes(b"previous membrane")
    before = sorted(out.iterdir())
    real_imwrite = tifffile.imwrite
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_imwrite(*args, **kwargs)

    with mock.patch("tifffile.imwrite", side_effect=second_fails):
        code, message = run(
            ["segment", str(p["good.tif"]), "-o", str(labels), "--membrane-out", str(membrane)]
            + ["--overwrite", "--quiet", "--model", "ridge", "--voxel-size", "50", "4", "4"]
        )
    intact = labels.read_bytes() == b"previous labels"
    intact &= membrane.read_bytes() == b"previous membrane"
    return code, message, intact and sorted(out.iterdir()) == before


def report_rows(tmp: str) -> list[tuple[str, int, str]]:
    """Run every case in the folder ``tmp``: (case, exit status, message)."""
    folder, out = Path(tmp) / "in", Path(tmp) / "out"
    folder.mkdir()
    out.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns about the deliberately bad files
        paths = make_inputs(folder)
    rows = []
    for name, argv in cases(paths, out):
        for stale in out.glob("out.tif"):
            stale.unlink()
        code, message = run(argv)
        if name.startswith("ids beyond uint16") and code == 0:
            message = f"written as {tifffile.imread(out / 'big-ids.tif').dtype}"
        rows.append((name, code, message.replace(tmp, "<tmp>")))
    code, message, intact = full_disk_case(paths, out)
    rows.append(
        (
            "disk full while writing the second output (simulated ENOSPC)",
            code,
            f"{message.replace(tmp, '<tmp>')} [old files intact, nothing else left: {intact}]",
        )
    )
    return rows


def report_table() -> str:
    """The markdown table of every case, as docs/reliability.md holds it."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = report_rows(tmp)
    lines = ["| case | exit | message |", "| --- | --- | --- |"]
    lines += [
        f"| {name} | {code} | {message.replace('|', '/') or '(ok, no message)'} |"
        for name, code, message in rows
    ]
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """``text`` (docs/reliability.md) with the table between the markers replaced."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{table}\n{text[end:]}"
