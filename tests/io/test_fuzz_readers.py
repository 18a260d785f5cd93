"""Fuzz the readers: a random or corrupt file must read, or raise InputError with one line.

Every supported form gets random bytes and damaged copies (truncated, bit-flipped, overwritten)
of a small valid file: TIFF (plain, uint32, tiled zlib, OME with LZW), PNG, HDF5, Zarr v2 (blosc)
and v3 (zstd) arrays, an OME-Zarr group and slice folders. Both entry points are checked:
:func:`napari_emseg.io.read_volume` and the napari hook ``get_reader(path)(path)``. Whatever
happens, the result is a well-formed volume or an :class:`~napari_emseg.io.InputError` whose
message is one line naming the file; any other exception fails the test.

The riskiest batch (bytes into tifffile, h5py, libpng and blosc, all C code) runs in a child
process with a memory cap and a timeout, so a segfault or a runaway allocation fails one test
instead of killing the run. Run it alone with ``python tests/test_fuzz_readers.py --batch DIR``;
set ``EMSEG_TEST_SCALE=20`` for a deeper hunt.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_emseg._reader import get_reader
from napari_emseg.io import InputError, Volume, read_volume, write_image_tiff, write_labels_tiff

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# File signatures, so that random bytes get past the first check into the parsers.
MAGIC = [b"", b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"\x89HDF\r\n\x1a\n", PNG_MAGIC]
# EMSEG_TEST_SCALE=20 runs twenty times as many inputs (a deeper hunt, minutes instead of seconds).
SCALE = max(1, int(os.environ.get("EMSEG_TEST_SCALE", "1")))
FUZZ = settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- what a good outcome looks like -----------------------------------------------------------


def _check_error(err: InputError, path: Path) -> None:
    text = str(err)
    assert text.strip(), "empty InputError message"
    assert "\n" not in text and "\r" not in text, repr(text)
    assert path.name in text, f"the message does not name {path.name}: {text}"


def _check_volume(vol: object) -> None:
    assert isinstance(vol, Volume), type(vol)
    data = vol.data
    assert isinstance(data, np.ndarray) and data.ndim == 3 and min(data.shape) >= 1, data.shape
    assert data.dtype.kind in "iuf" and data.dtype.isnative, data.dtype
    assert len(vol.scale) == 3 and all(np.isfinite(s) and s > 0 for s in vol.scale), vol.scale
    assert vol.unit in ("nm", "pixel"), vol.unit
    assert isinstance(vol.is_labels, bool) and isinstance(vol.name, str) and vol.name
    assert data.dtype.kind in "iu" or not vol.is_labels, "float labels"


def _check_layers(layers: object) -> None:
    assert isinstance(layers, list) and len(layers) == 1, layers
    data, kwargs, kind = layers[0]
    assert kind in ("image", "labels")
    assert isinstance(data, np.ndarray) and data.ndim == 3
    assert kwargs["name"] and len(kwargs["scale"]) == 3


def read_outcome(path: Path, *, hook: bool = True) -> str:
    """``"read"`` or ``"refused"`` (InputError); anything else raises out of here."""
    with warnings.catch_warnings():
        # As in napari and the CLI, warnings are not errors (pytest makes them errors here).
        warnings.simplefilter("ignore")
        try:
            vol = read_volume(path)
        except InputError as err:
            _check_error(err, path)
            outcome = "refused"
        else:
            _check_volume(vol)
            outcome = "read"
        if hook:
            reader = get_reader(str(path))
            assert reader is not None, f"get_reader declines {path}"
            try:
                layers = reader(str(path))
            except InputError as err:
                _check_error(err, path)
                assert outcome == "refused", "get_reader refused what read_volume read"
            else:
                _check_layers(layers)
                assert outcome == "read", "get_reader read what read_volume refused"
    return outcome


# --- small valid inputs -----------------------------------------------------------------------


def _zarr_array(path: Path, data: np.ndarray, **kwargs: Any) -> None:
    arr = zarr.open_array(store=str(path), mode="w", shape=data.shape, dtype=data.dtype, **kwargs)
    arr[...] = data


def _ome_zarr(path: Path, data: np.ndarray) -> None:
    group = zarr.open_group(str(path), mode="w")
    arr = group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[1:]))
    arr[...] = data
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [0.05, 0.004, 0.004]}],
                }
            ],
        }
    ]


def _files(folder: Path) -> list[Path]:
    """Metadata files first, then chunks (a few: one of each kind is what matters)."""
    found = sorted(p for p in folder.rglob("*") if p.is_file())
    meta = [p for p in found if p.name in ("zarr.json", ".zarray", ".zattrs", ".zgroup")]
    return meta + [p for p in found if p not in meta][:2]


def make_samples(folder: Path, *, risky: bool = True) -> list[tuple[Path, list[Path]]]:
    """Valid inputs of every form: (what to read, the files in it worth corrupting).

    Without ``risky`` only the Zarr v3 stores (JSON metadata and zstd chunks) are made.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 300, (3, 12, 10)).astype(np.uint16)
    grey = rng.integers(0, 256, (3, 12, 10)).astype(np.uint8)
    samples: list[tuple[Path, list[Path]]] = []
    _zarr_array(folder / "raw.zarr", grey, chunks=(1, 6, 10))
    _ome_zarr(folder / "image.ome.zarr", grey)
    samples += [(folder / n, _files(folder / n)) for n in ("raw.zarr", "image.ome.zarr")]
    if not risky:
        return samples

    from numcodecs import Blosc

    _zarr_array(folder / "v2", ids, chunks=(1, 12, 10), zarr_format=2, compressor=Blosc())
    samples.append((folder / "v2", _files(folder / "v2")))
    tiffs = [
        write_labels_tiff(folder / "labels.tif", ids, scale=(50, 4, 4)),
        write_labels_tiff(folder / "ids32.tiff", ids.astype(np.uint32) + 70_000),
        write_image_tiff(folder / "prob.tif", rng.random((2, 12, 10), dtype=np.float32)),
    ]
    tifffile.imwrite(folder / "tiled.tif", grey, tile=(16, 16), compression="zlib")
    tifffile.imwrite(
        folder / "cells.ome.tif",
        ids,
        ome=True,
        compression="lzw",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.004, "PhysicalSizeY": 0.004},
    )
    tiffs += [folder / "tiled.tif", folder / "cells.ome.tif"]
    (folder / "slice.png").write_bytes(imagecodecs.png_encode(grey[0]))
    (folder / "deep.png").write_bytes(imagecodecs.png_encode(ids[0]))
    with h5py.File(folder / "stack.h5", "w") as f:
        raw = f.create_dataset("volumes/raw", data=grey, chunks=(1, 12, 10), compression="gzip")
        raw.attrs["resolution"] = [40.0, 4.0, 4.0]
    with h5py.File(folder / "seg.h5", "w") as f:
        f.create_dataset("seg", data=ids)
    singles = [*tiffs, folder / "slice.png", folder / "deep.png", folder / "stack.h5"]
    samples += [(p, [p]) for p in [*singles, folder / "seg.h5"]]
    for kind in ("png", "tif"):
        slices = folder / f"{kind}-slices"
        slices.mkdir()
        for z in range(3):
            if kind == "png":
                (slices / f"s{z}.png").write_bytes(imagecodecs.png_encode(grey[z]))
            else:
                tifffile.imwrite(slices / f"s{z}.tif", grey[z])
        samples.append((slices, sorted(slices.iterdir())[1:2]))
    return samples


# --- damage -----------------------------------------------------------------------------------


def mutations(data: bytes, rng: np.random.Generator, count: int) -> Iterator[tuple[str, bytes]]:
    """Truncated, bit-flipped and overwritten copies of ``data`` (seeded, so reproducible)."""
    n = len(data)
    cuts = {0, 1, 4, 8, 16, 64, 256, n // 4, n // 2, n - 16, n - 1}
    cuts |= {int(c) for c in rng.integers(0, n, 4)}
    for cut in sorted(c for c in cuts if 0 <= c < n):
        yield f"truncated at {cut}", data[:cut]
    for i in range(max(count - len(cuts), 0)):
        buf = bytearray(data)
        # Half the damage in the first 512 bytes, where headers and the first IFD live.
        span = min(n, 512) if i % 2 else n
        if i % 3 == 2:
            at, size = int(rng.integers(0, span)), int(rng.integers(1, 9))
            fill = int(rng.choice([0x00, 0xFF, int(rng.integers(0, 256))]))
            buf[at : at + size] = bytes([fill]) * len(buf[at : at + size])
            label = f"bytes {at}..{at + size} set to {fill:#04x}"
        else:
            flips = [
                (int(rng.integers(0, span)), int(rng.integers(0, 8))) for _ in range(i % 8 + 1)
            ]
            for at, bit in flips:
                buf[at] ^= 1 << bit
            label = f"bits flipped (offset, bit) {flips}"
        yield label, bytes(buf)


READ_LIMIT_S = 10  # one tiny file; a read that takes longer is a hang


class _Hang(BaseException):
    """Raised in a read that ran past its time (BaseException: readers must not swallow it)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt a Python-level endless loop (POSIX); the parent's timeout covers the rest."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise _Hang(f"the read did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _signature(exc: BaseException) -> str:
    """Exception type and the deepest napari_emseg line it passed, to group failures."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "napari_emseg" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def run_batch(folder: Path, per_file: int) -> int:
    """The child process: damage every sample file, feed random bytes; 0 when all went well."""
    try:
        import resource

        # Corrupt headers may claim huge images: make such allocations fail fast (MemoryError,
        # which the readers turn into InputError) instead of swapping.
        limit = 6 << 30
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass
    rng = np.random.default_rng(20240611)
    tally: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    kinds: Counter[tuple[str, str]] = Counter()
    keep = folder / "failed-inputs"
    keep.mkdir(parents=True)
    for target, files in make_samples(folder / "valid"):
        form = target.name
        for file in files:
            original = file.read_bytes()
            for index, (label, damaged) in enumerate(mutations(original, rng, per_file)):
                file.write_bytes(damaged)
                try:
                    with _time_limit(READ_LIMIT_S):
                        outcome = read_outcome(target, hook=index % 4 == 0)
                except BaseException as exc:  # noqa: BLE001 - the point is to catch anything
                    kept = keep / f"{len(failures)}-{file.name}"
                    shutil.copyfile(file, kept)  # the damaged input, to reproduce with
                    where = f"{file.relative_to(folder / 'valid')} {label} (kept as {kept})"
                    failures.append(f"{where}:\n{traceback.format_exc()}")
                    kinds[form, _signature(exc)] += 1
                    outcome = "FAILED"
                tally[form, outcome] += 1
            file.write_bytes(original)
        print(f"done {form}", flush=True)  # shows how far a crash or a hang got

    random_dir = folder / "random"
    random_dir.mkdir()

    @settings(max_examples=per_file * 4, deadline=None, database=None, derandomize=True)
    @given(
        prefix=st.sampled_from(MAGIC),
        body=st.binary(max_size=2048),
        suffix=st.sampled_from([".tif", ".tiff", ".h5", ".hdf5", ".png"]),
    )
    def random_bytes(prefix: bytes, body: bytes, suffix: str) -> None:
        path = random_dir / f"random{suffix}"
        path.write_bytes(prefix + body)
        with _time_limit(READ_LIMIT_S):
            tally[f"random{suffix}", read_outcome(path)] += 1

    try:
        random_bytes()  # hypothesis shrinks and reports a failing input itself
    except BaseException:  # noqa: BLE001
        failures.append(f"random bytes:\n{traceback.format_exc()}")
    for (form, outcome), n in sorted(tally.items()):
        print(f"tally {form} {outcome} {n}")
    if failures:
        for (form, kind), n in sorted(kinds.items()):
            print(f"failed {form} x{n}: {kind}")
        print(f"{len(failures)} FAILURES; the first ones:")
        print("\n".join(failures[:5]))
        return 1
    return 0


@pytest.mark.slow
def test_damaged_and_random_files_in_a_child_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-X", "faulthandler", __file__, "--batch", str(tmp_path)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=240 * SCALE, env=env)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise AssertionError(f"the fuzz batch hung; it got to:\n{out[-2000:]}") from None
    report = f"exit code {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, report  # negative: killed by a signal (a crash in C code)
    tally = Counter()
    for line in proc.stdout.splitlines():
        if line.startswith("tally "):
            _, form, outcome, n = line.split()
            tally[form, outcome] += int(n)
    forms = {form for form, _ in tally}
    # Every sample and every random suffix was fed, and the damage was real: most files are
    # refused, yet some survive (flips in pixel data), so "read" is exercised too.
    assert {"labels.tif", "stack.h5", "slice.png", "v2", "raw.zarr", "png-slices"} <= forms
    assert {"random.tif", "random.h5", "random.png"} <= forms, forms
    assert sum(n for (_, outcome), n in tally.items() if outcome == "refused") > 500, report
    assert sum(n for (_, outcome), n in tally.items() if outcome == "read") > 20, report
    for form in ("labels.tif", "stack.h5", "slice.png"):
        assert tally[form, "refused"] > 0, (form, report)


def _looping_ome_tiff(path: Path) -> None:
    """A 3-page OME-TIFF whose last IFD links back to the first, with damaged OME-XML.

    Found by the batch above: tifffile then falls back to its generic series, which walks the
    page chain round and round.
    """
    tifffile.imwrite(path, np.arange(60, dtype=np.uint8).reshape(3, 4, 5), ome=True)
    with tifffile.TiffFile(path) as tif:
        tif.pages.useframes = False
        first, last = tif.pages[0].offset, tif.pages[2].offset
    raw = bytearray(path.read_bytes())
    (tags,) = struct.unpack_from("<H", raw, last)
    struct.pack_into("<I", raw, last + 2 + 12 * tags, first)  # the "next IFD" field
    at = raw.find(b"<OME")
    raw[at + 1 : at + 2] = b"<"  # XML no longer well-formed
    path.write_bytes(bytes(raw))


def test_tiff_with_a_looping_ifd_chain_is_refused_not_hung(tmp_path: Path) -> None:
    path = tmp_path / "loop.ome.tif"
    _looping_ome_tiff(path)
    outcome: list[object] = []

    def read() -> None:
        try:
            read_volume(path)
        except Exception as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "read_volume hangs on a TIFF whose IFD chain loops"
    assert len(outcome) == 1 and isinstance(outcome[0], InputError), outcome
    _check_error(outcome[0], path)
    assert "circular" in str(outcome[0])


# --- in this process: Zarr v3 (JSON metadata, zstd chunks) and PNG random bytes --------------


@pytest.fixture(scope="module")
def pristine_zarr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pristine-zarr")
    make_samples(folder, risky=False)
    return folder


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 8)
    | st.floats(-10, 10, allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["space", "scale", "0", "uint8", "zyx", "micrometer"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _json_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if prefix:
        yield prefix
    if isinstance(node, (dict, list)):
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            yield from _json_paths(value, (*prefix, key))


def _edit(doc: Any, path: tuple, action: str, value: Any) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@FUZZ
@given(data=st.data())
@pytest.mark.slow
def test_zarr_metadata_edits(pristine_zarr: Path, data: st.DataObject) -> None:
    """Zarr v3 ``zarr.json`` with values replaced or deleted, in an array and an OME group."""
    with tempfile.TemporaryDirectory() as scratch:
        store = data.draw(st.sampled_from(["raw.zarr", "image.ome.zarr"]))
        root = Path(shutil.copytree(pristine_zarr / store, Path(scratch) / store))
        meta = data.draw(st.sampled_from(sorted(root.rglob("zarr.json"))))
        doc = json.loads(meta.read_text())
        edited = copy.deepcopy(doc)
        for _ in range(data.draw(st.integers(1, 3))):
            paths = list(_json_paths(edited))
            if not paths:
                break
            path = data.draw(st.sampled_from(paths))
            action = data.draw(st.sampled_from(["replace", "delete"]))
            _edit(edited, path, action, data.draw(json_values) if action == "replace" else None)
        meta.write_text(json.dumps(edited))
        read_outcome(root)


@FUZZ
@given(data=st.data(), body=st.binary(max_size=512))
def test_zarr_random_bytes_in_metadata_or_chunk(
    pristine_zarr: Path, data: st.DataObject, body: bytes
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = data.draw(st.sampled_from(["raw.zarr", "image.ome.zarr"]))
        root = Path(shutil.copytree(pristine_zarr / store, Path(scratch) / store))
        victim = data.draw(st.sampled_from(sorted(p for p in root.rglob("*") if p.is_file())))
        victim.write_bytes(body)
        read_outcome(root)


@FUZZ
@given(prefix=st.sampled_from([b"", PNG_MAGIC]), body=st.binary(max_size=1024))
def test_png_random_bytes(prefix: bytes, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "noise.png"
        path.write_bytes(prefix + body)
        # Random chunks never pass libpng's CRC checks: these must all be refused, cleanly.
        assert read_outcome(path) == "refused"


def test_pristine_samples_read(tmp_path: Path) -> None:
    """The fuzz starts from files that read: the damage, not the samples, makes them fail."""
    for target, _ in make_samples(tmp_path):
        assert read_outcome(target) == "read", target


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        sys.exit(run_batch(Path(sys.argv[2]), per_file=50 * SCALE))
    sys.exit(f"usage: python {sys.argv[0]} --batch EMPTY_FOLDER")
