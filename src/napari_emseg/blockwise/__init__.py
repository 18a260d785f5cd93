"""Volumes larger than memory: a block grid with halos, per-block segmentation, id stitching,
and executors that run the blocks here or on a Dask cluster.

``grid`` cuts the volume, ``run`` segments it block by block, ``stitching`` joins ids across
block faces, ``executor`` and ``cluster`` decide where blocks run.
"""
