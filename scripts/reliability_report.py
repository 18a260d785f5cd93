"""Feed the CLI every kind of bad input we know of; write what each gets into docs/reliability.md.

    .venv/bin/python scripts/reliability_report.py [-o docs/reliability.md]

Each case runs the real `napari-emseg` entry point in-process on files made in a temporary
folder; the table (between the markers in the document) holds its exit status and exactly what
it printed on stderr.
"""

import argparse
import contextlib
import errno
import io
import json
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import tifffile

from napari_emseg.cli import main

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- cases: made by scripts/reliability_report.py -->", "<!-- /cases -->"


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
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
    seg = ["segment"]
    o = ["-o", str(out / "out.tif")]
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
            [
                "propagate",
                str(p["good.tif"]),
                "--labels",
                str(p["labels-wrong-shape.tif"]),
                "--ref-slice",
                "1",
                *o,
            ],
        ),
        (
            "reference slice out of range",
            [
                "propagate",
                str(p["good.tif"]),
                "--labels",
                str(p["slice-2d.tif"]),
                "--ref-slice",
                "5",
                *o,
            ],
        ),
        (
            "ids beyond uint16 (written as uint32)",
            [
                "propagate",
                str(p["good.tif"]),
                "--labels",
                str(p["labels-big-ids.tif"]),
                "--ref-slice",
                "1",
                "-o",
                str(out / "big-ids.tif"),
            ],
        ),
        ("unknown model", [*seg, str(p["good.tif"]), *o, "--model", "sam"]),
        ("unknown device", [*seg, str(p["good.tif"]), *o, "--device", "tpu"]),
        ("GPU asked for, none present", [*seg, str(p["good.tif"]), *o, "--device", "cuda"]),
        (
            "output folder does not exist",
            [*seg, str(p["good.tif"]), "-o", str(out / "no" / "such" / "x.tif")],
        ),
        (
            "output folder not writable (/proc)",
            [*seg, str(p["good.tif"]), "-o", "/proc/emseg-out.tif"],
        ),
        ("output exists, no --overwrite", [*seg, str(p["good.tif"]), "-o", str(p["uint16.tif"])]),
        ("output is not .tif", [*seg, str(p["good.tif"]), "-o", str(out / "x.png")]),
    ]


def full_disk_case(p: dict[str, Path], out: Path) -> tuple[int, str, bool]:
    target = out / "kept.tif"
    target.write_bytes(b"previous result")
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("tifffile.imwrite", side_effect=disk_full):
        code, message = run(["segment", str(p["good.tif"]), "-o", str(target), "--overwrite"])
    intact = target.read_bytes() == b"previous result"
    leftovers = [f.name for f in out.iterdir() if f.name.startswith(".")]
    return code, message, intact and not leftovers


def main_report() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "reliability.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "in", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tifffile warns about the deliberately bad files
            paths = make_inputs(folder)
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
                "disk full while writing (simulated ENOSPC)",
                code,
                f"{message.replace(tmp, '<tmp>')} [old file intact, no temp file left: {intact}]",
            )
        )
    table = "\n".join(
        f"| {name} | {code} | {message.replace('|', '/') or '(ok, no message)'} |"
        for name, code, message in rows
    )
    header = "| case | exit | message |\n| --- | --- | --- |\n"
    text = args.output.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    args.output.write_text(f"{text[:start]}\n{header}{table}\n{text[end:]}")
    print(json.dumps({"cases": len(rows), "output": str(args.output)}))


if __name__ == "__main__":
    main_report()
