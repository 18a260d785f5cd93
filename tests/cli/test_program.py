"""The program: one-line errors with exit 2, --help without torch, defaults in every help."""

import errno
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_emseg.cli import main
from napari_emseg.cli.program import _os_message
from napari_emseg.pipeline import list_models


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "{missing}", "-o", "{out}"], "does not exist"),
        (["segment", "{text}", "-o", "{out}"], "not a readable TIFF"),
        (["segment", "{crop}", "-o", "{tmp}/no/such/dir/x.tif"], "does not exist: create it"),
        (
            ["segment", "{crop}", "-o", "{existing}"],
            "exists and was left as it is; pass --overwrite to replace it",
        ),
        (["segment", "{crop}", "-o", "{tmp}/x.png"], "must end in .tif"),
        (["segment", "{crop}", "-o", "{out}", "--with-image"], "give -o LABELS.zarr"),
        (
            ["propagate", "{crop}", "--labels", "{existing}", "--ref-slice", "7", "-o", "{out}"],
            "outside 0..3",
        ),
        (
            ["propagate", "{crop}", "--labels", "{small}", "--ref-slice", "1", "-o", "{out}"],
            "fits neither the image",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_2_and_writes_nothing(
    args, message, isbi_crop, tmp_path, capsys
):
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    existing = tmp_path / "existing.tif"
    tifffile.imwrite(existing, np.ones((4, 160, 192), np.uint16), photometric="minisblack")
    before = existing.read_bytes()
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((10, 10), np.uint16))
    values = {
        "missing": tmp_path / "missing.tif",
        "out": tmp_path / "out.tif",
        "text": text,
        "crop": isbi_crop,
        "tmp": tmp_path,
        "existing": existing,
        "small": small,
    }
    argv = [a.format(**values) for a in args]
    assert main([*argv, "--model", "ridge"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out.tif").exists()
    assert existing.read_bytes() == before  # never overwritten


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["segment", "in.tif"], "the following arguments are required: -o/--output"),
        (
            [
                "propagate",
                "in.tif",
                "--labels",
                "l.tif",
                "--ref-slice",
                "1",
                "-o",
                "o.tif",
                "--variant",
                "foo",
            ],
            "invalid choice: 'foo'",
        ),  # fmt: skip
        (["segment", "in.tif", "-o", "o.tif", "--voxel-size", "1", "2"], "expected 3 arguments"),
        (["segment", "in.tif", "-o", "o.tif", "--voxel-size", "1", "x", "2"], "three numbers"),
        (["segment", "in.tif", "-o", "o.tif", "--voxel-size", "1", "-2", "2"], "positive"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ],
)
def test_a_mistyped_command_line_is_one_line_and_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err
    assert err.startswith("napari-emseg") and err.rstrip().endswith("(see --help)")
    assert "check disk space" not in err and "cconvlstm-st" not in err


def test_operating_system_errors_say_what_to_do_only_when_that_is_known():
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out.tif")
    assert _os_message(full) == "/data/out.tif: No space left on device (free some disk space)"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "weights.pt")
    assert _os_message(missing) == "weights.pt: No such file or directory"
    assert "block by block" in _os_message(MemoryError())


@pytest.mark.slow
def test_console_script_exit_code_and_message(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_emseg",
            "segment",
            str(tmp_path / "nope.tif"),
            "-o",
            str(tmp_path / "x.tif"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def test_every_help_answers_without_torch():
    code = (
        "import argparse, contextlib, io, sys\n"
        "from napari_emseg.cli import build_parser\n"
        "def walk(p):\n"
        "    p.format_help()\n"
        "    for a in p._actions:\n"
        "        if isinstance(a, argparse._SubParsersAction):\n"
        "            for c in a.choices.values(): walk(c)\n"
        "walk(build_parser())\n"
        "print(sorted(m for m in ('torch', 'napari', 'qtpy', 'zarr', 'dask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_model_and_absent_device_are_refused(isbi_crop, tmp_path, capsys):
    code = main(["segment", str(isbi_crop), "-o", str(tmp_path / "x.tif"), "--model", "nope"])
    err = capsys.readouterr().err
    default = list_models()[0]
    assert code == 2 and f"unknown model 'nope'; choose one of: {default}" in err
    code = main(["segment", str(isbi_crop), "-o", str(tmp_path / "x.tif"), "--device", "tpu"])
    assert code == 2 and "unknown device 'tpu'" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        code = main(
            ["predict-membrane", str(isbi_crop), "-o", str(tmp_path / "p.tif"), "--device", "cuda"]
        )
        assert code == 2 and "not available" in capsys.readouterr().err


def test_train_is_a_subcommand_of_the_main_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "membrane", "--help"])
    assert exit_info.value.code == 0 and "--model" in capsys.readouterr().out
    code = main(["train", "membrane", "--data", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert code == 2 and "neither a dataset folder" in capsys.readouterr().err


def test_version_and_defaults_in_every_help(capsys):
    from napari_emseg import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out
    for command in ("segment", "predict-membrane", "propagate", "adapt", "simulate-proofreading"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: auto)" in text and "--voxel-size" in text  # the shared options
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "(default: 0)" in " ".join(capsys.readouterr().out.split())  # --seed


def test_the_simulated_proofreader_repropagates_like_the_widget_by_default(capsys):
    from napari_emseg.pipeline import default_method

    with pytest.raises(SystemExit):
        main(["simulate-proofreading", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    widget = default_method(interactive=True)
    assert f"(default: {widget}, the Proofread widget's)" in text
    from napari_emseg.cli import build_parser

    args = build_parser().parse_args(["simulate-proofreading", "in.tif", "--gt", "gt.tif"])
    assert args.method == widget


@pytest.mark.parametrize(("values", "message"), [(np.nan, "no finite values"), (7.0, "constant")])
def test_an_image_with_nothing_to_segment_is_refused(tmp_path, capsys, values, message):
    path, out = tmp_path / "blank.tif", tmp_path / "labels.tif"
    tifffile.imwrite(path, np.full((3, 32, 32), values, np.float32), metadata={"axes": "ZYX"})
    assert main(["segment", str(path), "-o", str(out), "--model", "ridge"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()
