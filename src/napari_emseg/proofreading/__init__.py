"""Proofreading engine: object edits as undoable diffs, targeted repropagation, error finding.

Numpy in, numpy out (no napari, no Qt): the Proofread widget, the CLI and scripts share it.
"""

from napari_emseg.proofreading.consistency import Suspicion, find_suspicious, suspicion_map
from napari_emseg.proofreading.edits import (
    Diff,
    ObjectExtent,
    delete_object,
    diff_between,
    ids_touched,
    merge_objects,
    next_free_id,
    object_extent,
    object_table,
    split_object,
)
from napari_emseg.proofreading.export import write_object_csv, write_ome_zarr
from napari_emseg.proofreading.repropagate import repropagate
from napari_emseg.proofreading.session import ProofreadingSession

__all__ = [
    "Diff",
    "ObjectExtent",
    "ProofreadingSession",
    "Suspicion",
    "delete_object",
    "diff_between",
    "find_suspicious",
    "ids_touched",
    "merge_objects",
    "next_free_id",
    "object_extent",
    "object_table",
    "repropagate",
    "split_object",
    "suspicion_map",
    "write_object_csv",
    "write_ome_zarr",
]
