"""Volumes larger than memory: a block grid with halos, per-block segmentation, id stitching,
and executors that run the blocks here or on a Dask cluster.

``grid`` cuts the volume, ``run`` segments it block by block (``tasks``: what each worker does;
``chain``: blocks that cut z carry ids on from the reference slice), ``stitching`` joins ids
across block faces, ``vote`` runs the supervoxel vote once over the volume, ``executor`` and
``cluster`` decide where blocks run.
"""
