"""Sparse tracing: a reference that labels only some neurons carries exactly those.

A proofreader often traces a few neurons through a stack: on an empty labels layer they fill
(or just dot) two or three cells of one slice and propagate. Unlabelled area is then "not
mine", not "something new": it bounds the traced objects and never receives an id. Every
unlabelled cell of the reference slice (a 2D segmentation of its membrane map) is carried as a
placeholder object, so a traced neuron meets its neighbours as in a dense run (on ISBI slices
0-9 the share of a traced neuron's voxels inside it is then about the dense run's: 0.87 for an
easy neuron, 0.3-0.6 for a hard one, as dense); placeholders and newcomers are removed
afterwards (:func:`drop_placeholders`).

A brush dot or a scribble is grown to its cell on the reference slice first
(:func:`grow_scribbles`): the cells are a 2D segmentation of the slice's membrane map, and a
painted object takes the unlabelled pixels of every cell that holds a real part of it. The
user's own pixels never change.
"""

import numpy as np

# A reference slice with less than this fraction of its pixels labelled is a sparse one: a
# slice corrected after Segment is labelled nearly everywhere, a few traced neurons cover
# a few percent.
SPARSE_COVERAGE = 0.5
# A cell joins a painted object when it holds at least this share of the object's pixels (or
# all of them): a painting that spills a few pixels over a membrane does not take the
# neighbour's cell.
CELL_SHARE = 0.1
# ... and only when it paints less than this share of the cell: a dot or a scribble. A neuron
# painted whole is left as painted, since the cell around it may hold its neighbours too
# (a 2D segmentation merges cells where the map shows no membrane).
SCRIBBLE_SHARE = 0.25


def coverage(reference: np.ndarray) -> float:
    """Fraction of a 2D reference slice that is labelled.

    Examples
    --------
    >>> coverage(np.array([[0, 1], [2, 2]]))
    0.75
    """
    reference = np.asarray(reference)
    return float(np.count_nonzero(reference)) / max(reference.size, 1)


def is_sparse(reference: np.ndarray) -> bool:
    """True when the reference labels less than :data:`SPARSE_COVERAGE` of its slice.

    Examples
    --------
    >>> is_sparse(np.zeros((4, 4), int)), is_sparse(np.ones((4, 4), int))
    (True, False)
    """
    return coverage(reference) < SPARSE_COVERAGE


def grow_scribbles(
    reference: np.ndarray, cells: np.ndarray, *, share: float = CELL_SHARE
) -> np.ndarray:
    """The reference with every painted object grown to the cells that hold it.

    Parameters
    ----------
    reference : ndarray of int, shape (Y, X)
        The user's labels of one slice (0 = unlabelled).
    cells : ndarray of int, shape (Y, X)
        A segmentation of the same slice into cells (e.g. a watershed of its membrane map).
    share : float
        A cell joins an object when it holds at least this share of the object's pixels.

    Returns
    -------
    ndarray
        A copy of ``reference``: labelled pixels unchanged, unlabelled pixels of the chosen
        cells (those the object paints less than :data:`SCRIBBLE_SHARE` of) set to their
        object. A cell claimed by two objects goes to the one with more
        pixels in it.

    Examples
    --------
    >>> cells = np.array([[1, 1, 1, 2, 2], [1, 1, 1, 2, 2]])
    >>> ref = np.array([[0, 0, 0, 0, 0], [0, 7, 0, 0, 0]])  # a dot in cell 1
    >>> grow_scribbles(ref, cells).tolist()
    [[7, 7, 7, 0, 0], [7, 7, 7, 0, 0]]
    """
    reference = np.asarray(reference)
    cells = np.asarray(cells)
    if reference.shape != cells.shape:
        raise ValueError(f"reference {reference.shape} and cells {cells.shape} differ")
    painted = reference != 0
    if not painted.any():
        return reference.copy()
    ids, obj = np.unique(reference[painted], return_inverse=True)
    _, cell = np.unique(cells, return_inverse=True)
    cell = cell.reshape(cells.shape)
    n_cells = int(cell.max()) + 1
    pairs, counts = np.unique(cell[painted].astype(np.int64) * ids.size + obj, return_counts=True)
    pair_cell, pair_obj = pairs // ids.size, pairs % ids.size
    object_area = np.bincount(obj, minlength=ids.size)
    cell_area = np.bincount(cell.ravel(), minlength=n_cells)
    real = counts >= np.minimum(share * object_area[pair_obj], object_area[pair_obj])
    real &= counts < SCRIBBLE_SHARE * cell_area[pair_cell]
    if not real.any():  # painted whole: nothing to grow
        return reference.copy()
    pair_cell, pair_obj, counts = pair_cell[real], pair_obj[real], counts[real]
    # Each cell goes to the object with the most pixels in it (the last after sorting).
    order = np.lexsort((counts, pair_cell))
    last = np.r_[pair_cell[order][1:] != pair_cell[order][:-1], True]
    owner = np.full(n_cells, -1, np.int64)
    owner[pair_cell[order][last]] = pair_obj[order][last]
    grown = owner[cell]
    out = reference.copy()
    fill = ~painted & (grown >= 0)
    out[fill] = ids[grown[fill]]
    return out


def drop_placeholders(
    out: np.ndarray, labels: np.ndarray, first_new: int, targets: np.ndarray
) -> np.ndarray:
    """Remove the competitors of a sparse run: ids from ``first_new`` on go back to what the
    input had there, or to 0 where a traced object (``targets``) used to be.

    Examples
    --------
    >>> out = np.array([1, 5, 6, 2]); labels = np.array([1, 1, 3, 2])
    >>> drop_placeholders(out, labels, 5, np.array([1])).tolist()
    [1, 0, 3, 2]
    """
    new = out >= first_new
    if not new.any():
        return out
    before = np.where(np.isin(labels, targets), 0, labels)
    out = out.copy()
    out[new] = before[new].astype(out.dtype)
    return out
