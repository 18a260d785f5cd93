"""GPU efficiency of membrane inference and the full pipeline; prints one JSON object.

    python scripts/benchmark_gpu.py [--depth 30] [--pipeline-depth 100] [--size 1024] [-o out.json]

Measured on one CUDA device (medians of repeats after a warm-up):

- ``matmul_bf16_flops_per_s``: an 8192^3 bf16 matrix product, the roofline;
- membrane inference of a ``depth`` x ``size`` x ``size`` stack for several set-ups:
  ``legacy`` (tiles stacked on the CPU, one synchronous copy each way per batch, blended on the
  CPU: the code before the GPU path), and the GPU path of ``predict_tiled`` with float32, fp16
  and bf16 autocast, batch sizes, and ``torch.compile``. Each gives voxels/s and the model FLOP
  rate as a share of the matmul roofline;
- ``pipeline_s``: ``pipeline.segment`` (membrane, reference watershed, consistent ConvLSTM) on a
  synthetic ``pipeline-depth`` x ``size`` x ``size`` stack, one run after a small warm-up, with
  its membrane stage timed alone.

The set-ups are :mod:`napari_emseg.evaluation.gpu`.
"""

import argparse
import json

import numpy as np
import torch

from napari_emseg.evaluation import write_report
from napari_emseg.evaluation.gpu import matmul_rate, membrane_rows, pipeline_seconds
from napari_emseg.inference.membrane import build_model
from napari_emseg.models import build_network
from napari_emseg.models.cards import get_card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=30, help="slices of the inference stack")
    parser.add_argument("--pipeline-depth", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU")
    matmul = matmul_rate(args.repeats * 3)
    image = np.random.default_rng(0).random((args.depth, args.size, args.size), dtype=np.float32)
    card = get_card(None)
    result = {
        "device_name": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "matmul_bf16_flops_per_s": matmul,
        "membrane": {
            card.name: membrane_rows(card.name, build_model(card), image, matmul, args.repeats),
            "fusionnet-w1 (random weights)": membrane_rows(
                "fusionnet-w1",
                build_network("fusionnet", width=1.0, depth=4),
                image,
                matmul,
                args.repeats,
            ),
        },
    }
    print(json.dumps(result), flush=True)
    result["pipeline"] = pipeline_seconds((args.pipeline_depth, args.size, args.size))
    result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        write_report(args.output, text)


if __name__ == "__main__":
    main()
