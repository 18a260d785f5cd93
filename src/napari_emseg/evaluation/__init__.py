"""Measurements: held-out data, the rules every report follows, and the studies behind docs/.

The scripts in ``scripts/`` parse arguments and write prose; what they measure lives here, so
that every report reads the same blocks, makes its reference the same way and is tested:

- :mod:`.data`: the labelled blocks with their voxel sizes and reference slices (gala FIB-SEM
  train/test, ISBI 2012 slices 0-19/20-29, Gerhard VNC), and where the shared data lie;
- :mod:`.reference`: the ground-truth reference rule (one slice of ground truth grown into its
  boundary, as a proofread slice is);
- :mod:`.scoring`: adapted Rand error, VOI and object count in one call;
- :mod:`.report`: markdown tables and numbers; :mod:`.machine`: the machine line, the commit,
  timing; :mod:`.arguments`: a script's command line (description, ``--data``);
- studies: :mod:`.propagation`, :mod:`.supervoxels`, :mod:`.effort` (with the simulated
  proofreader, :mod:`.oracle`), :mod:`.membrane`, :mod:`.baselines`, :mod:`.adapt`,
  :mod:`.choices` (settings chosen on training data), :mod:`.blockwise` and :mod:`.processes`
  (commands measured as a user runs them), :mod:`.weights` (shipping fine-tuned propagation
  weights), :mod:`.speed` and :mod:`.proofreading_speed` (``napari-emseg benchmark``),
  :mod:`.corrections` (what the GUI tours correct), :mod:`.waterz` (the optional baseline).

Examples
--------
>>> import numpy as np
>>> from napari_emseg.evaluation import reference_from_truth, score
>>> gt = np.zeros((3, 4, 6), np.uint32); gt[:, :, :2], gt[:, :, 3:] = 1, 2
>>> labels = reference_from_truth(gt, 1)
>>> labels[1, 0].tolist(), score(labels, gt).are > 0
([1, 1, 1, 2, 2, 2], True)
"""

from napari_emseg.evaluation.data import (
    Block,
    blocks,
    data_dir,
    find_data_dir,
    gala_block,
    gerhard_stack,
    held_out_blocks,
    isbi_block,
    training_blocks,
)
from napari_emseg.evaluation.machine import describe_machine, git_commit, timed
from napari_emseg.evaluation.reference import (
    GROW_REFERENCE_PX,
    errors_from_references,
    reference_from_truth,
    reference_slice,
)
from napari_emseg.evaluation.report import (
    command_line,
    markdown_table,
    number,
    write_report,
)
from napari_emseg.evaluation.scoring import Scores, mean_scores, score

__all__ = [
    "GROW_REFERENCE_PX",
    "Block",
    "Scores",
    "blocks",
    "command_line",
    "data_dir",
    "describe_machine",
    "find_data_dir",
    "gala_block",
    "gerhard_stack",
    "git_commit",
    "held_out_blocks",
    "isbi_block",
    "markdown_table",
    "mean_scores",
    "number",
    "errors_from_references",
    "reference_from_truth",
    "reference_slice",
    "score",
    "timed",
    "training_blocks",
    "write_report",
]
