"""Synthetic serial-section EM stacks of neuropil with 3D instance ground truth.

The generator models each neurite as a centreline that runs roughly along z and drifts in (y, x)
from slice to slice. Every slice is partitioned among the centrelines present in it by a
weighted, slightly anisotropic Voronoi diagram (thin axons come out round, thick dendrites wrap
around them), which a smooth random warp makes curvy. Boundaries between different neurites
become dark membranes, rounded off at junctions; cytoplasm gets texture, vesicles and
mitochondria.
Some neurites end, some enter and some branch inside the stack, so the ground truth exercises
3D propagation as well as 2D segmentation. Only numpy, scipy and scikit-image are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.draw import ellipse

__all__ = ["SyntheticStack", "make_synthetic_stack"]

_CELL_AREA = 1800.0  # mean neurite cross-section in px^2 (~170 nm across at 4 nm/px)
_MIN_YX = 32
_DRIFT = 2.0  # rms centreline drift in px per slice (50 nm sections, 4 nm pixels)
_BETA = 0.8  # 0: additively, 1: multiplicatively weighted Voronoi
# Smooth domain warp (rms px, correlation length px) at two scales: it bends the Voronoi edges
# into curves and adds wiggles, while its gradient stays well below 1 so nothing folds over.
_WARP = ((6.0, 30.0), (2.0, 9.0))
_CORNER = 0.25  # rounding radius at junctions / typical neurite radius; leaves dark gaps


@dataclass(frozen=True)
class SyntheticStack:
    """A synthetic EM stack with its ground truth.

    Attributes
    ----------
    image : np.ndarray
        ``(Z, Y, X)`` uint8 EM-like image, membranes dark.
    labels : np.ndarray
        ``(Z, Y, X)`` uint32 3D instance labels; 0 on membrane pixels, objects ``1..N``.
    membranes : np.ndarray
        ``(Z, Y, X)`` bool, True on membrane pixels (``labels == 0``).
    scale : tuple of float
        Voxel size ``(z, y, x)`` in nm.
    """

    image: np.ndarray
    labels: np.ndarray
    membranes: np.ndarray
    scale: tuple[float, float, float] = (50.0, 4.0, 4.0)


@dataclass
class _Tracks:
    """Centrelines sampled per slice; branches are separate tracks that share an object id."""

    pos: np.ndarray  # (Z, T, 2) float (y, x), NaN where the track is absent
    radius: np.ndarray  # (Z, T) float, 0 where absent
    metric: np.ndarray  # (T, 3) coefficients (a, b, c) of a det-1 quadratic form
    obj: np.ndarray  # (T,) object id >= 1


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], corr: tuple[float, float, float]
) -> np.ndarray:
    """Gaussian random field with unit variance and correlation lengths ``corr`` (z, y, x).

    A tensor product of 1D Gaussian-bump bases on a coarse grid: three matrix products, so the
    cost is one pass over the volume per grid node along an axis, with no edge effects.
    """
    bz, by, bx = (_bump_basis(n, c) for n, c in zip(shape, corr, strict=True))
    coef = rng.standard_normal((bz.shape[1], by.shape[1], bx.shape[1]), dtype=np.float32)
    # Contract the small axes first: z, then x, and y last against the full (z, x) planes.
    field = np.tensordot(bz, coef, axes=1) @ bx.T  # (Z, ny_nodes, X)
    field = np.tensordot(by, field, axes=([1], [1]))  # (Y, Z, X)
    return np.ascontiguousarray(field.transpose(1, 0, 2))


def _bump_basis(n: int, corr: float) -> np.ndarray:
    """(n, nodes) weights of Gaussian bumps spaced ``corr`` apart, rows of unit norm."""
    # Nodes reach two correlation lengths beyond both ends, so the field has no edge effects.
    nodes = np.arange(-2 * corr, n + 2 * corr, corr)
    w = np.exp(-0.5 * ((np.arange(n)[:, None] - nodes[None, :]) / corr) ** 2)
    # Unit variance everywhere: the coefficients are iid standard normal.
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    return w.astype(np.float32)


def _validate(
    shape: tuple[int, int, int],
    n_neurites: int | None,
    membrane_width: float,
    noise: float,
    scale: tuple[float, float, float],
) -> tuple[int, int, int]:
    shape_t = tuple(int(s) for s in np.atleast_1d(np.asarray(shape)).ravel())
    if len(shape_t) != 3:
        raise ValueError(f"shape must be 3D (Z, Y, X), got {shape!r}")
    z, y, x = shape_t
    if z < 2 or y < _MIN_YX or x < _MIN_YX:
        raise ValueError(f"shape must have Z >= 2 and Y, X >= {_MIN_YX}, got {shape_t}")
    if n_neurites is not None and n_neurites < 1:
        raise ValueError(f"n_neurites must be >= 1, got {n_neurites}")
    if not membrane_width > 0:
        raise ValueError(f"membrane_width must be > 0, got {membrane_width}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if len(scale) != 3 or not all(float(s) > 0 for s in scale):
        raise ValueError(f"scale must be three positive voxel sizes (z, y, x), got {scale!r}")
    return z, y, x


def _relax(pos: np.ndarray, radius: np.ndarray, n_iter: int, step: float = 0.5) -> np.ndarray:
    """Push overlapping discs apart; thick neurites move less than thin ones.

    The discs cover the whole area (packing fraction 1 > hexagonal 0.91), so the packing stays
    under pressure and closes the gaps that endings and diverging branches leave behind.
    """
    if len(pos) < 2:
        return pos
    pos = pos.copy()
    pairs = cKDTree(pos).query_pairs(2.2 * radius.max(), output_type="ndarray")
    if len(pairs) == 0:
        return pos
    i, j = pairs.T
    w2 = radius**2 + 1e-6
    share_i = w2[j] / (w2[i] + w2[j])
    for _ in range(n_iter):
        delta = pos[j] - pos[i]
        dist = np.hypot(delta[:, 0], delta[:, 1]) + 1e-6
        overlap = np.clip(radius[i] + radius[j] - dist, 0.0, None)
        push = (step * overlap / dist)[:, None] * delta
        move = np.zeros_like(pos)
        np.add.at(move, i, -push * share_i[:, None])
        np.add.at(move, j, push * (1 - share_i)[:, None])
        pos += move
    return pos


def _flow(pos: np.ndarray, z: int, modes: tuple[np.ndarray, ...]) -> np.ndarray:
    """Divergence-free drift field (sum of shear waves) at the given positions and slice."""
    k, e, amp, phase, omega = modes
    arg = pos @ k.T + phase[None, :] + omega[None, :] * z  # (P, M)
    return (np.sin(arg) * amp[None, :]) @ e


def _simulate_tracks(
    rng: np.random.Generator, shape: tuple[int, int, int], n_view: int, margin: int
) -> _Tracks:
    """Random-walk the centrelines through z with endings, entries and branches."""
    nz, ny, nx = shape
    lo = np.array([-margin, -margin], float)
    hi = np.array([ny + margin, nx + margin], float)
    area = float(np.prod(hi - lo))
    n0 = max(3, round(n_view * area / (ny * nx)))

    # Sizes: many thin axons and a few thick dendrites; scaled so discs cover the area.
    dendrite = rng.random(n0) < 0.1
    rel = np.where(
        dendrite, rng.lognormal(np.log(2.0), 0.2, n0), rng.lognormal(np.log(0.85), 0.35, n0)
    )
    rel = np.maximum(rel, 0.45)  # no slivers too small for a watershed to seed
    unit = np.sqrt(area / (np.pi * (rel**2).sum()))
    r0 = rel * unit
    p0 = _relax(lo + rng.random((n0, 2)) * (hi - lo), r0, 60)
    p0 = np.clip(p0, lo, hi)

    # Topology events, placed on neurites well inside the field of view so they are seen.
    centre = np.all((p0 > [0.15 * ny, 0.15 * nx]) & (p0 < [0.85 * ny, 0.85 * nx]), axis=1)
    candidates = rng.permutation(np.flatnonzero(centre))
    n_events = max(1, round(0.08 * n_view)) if nz >= 4 else 0
    n_branch = max(1, round(0.03 * n_view)) if nz >= 6 else 0
    thick = candidates[r0[candidates] >= np.median(r0)]
    parents = thick[:n_branch]
    enders = np.setdiff1d(candidates, parents)[:n_events]
    n_branch, n_end = len(parents), len(enders)
    n_enter = n_events

    # Track layout: initial neurites, entering ones, branch children (their parent's id) and, per
    # branch, a neurite that enters between the diverging siblings and so separates them in 2D.
    n_t = n0 + n_enter + 2 * n_branch
    enter = np.arange(n0, n0 + n_enter)
    children = np.arange(n0 + n_enter, n0 + n_enter + n_branch)
    fillers = np.arange(n0 + n_enter + n_branch, n_t)
    z_start = np.zeros(n_t, int)
    z_stop = np.full(n_t, nz)
    z_stop[enders] = rng.integers(nz // 3, nz - 1, n_end, endpoint=True)
    z_start[enter] = rng.integers(1, max(2, 2 * nz // 3), n_enter, endpoint=True)
    z_branch = rng.integers(1, max(2, nz // 4), n_branch, endpoint=True)
    z_start[children] = z_branch
    z_start[fillers] = np.minimum(z_branch + 2, nz - 1)

    radius0 = np.concatenate(
        [
            r0,
            unit * rng.lognormal(np.log(0.85), 0.25, n_enter),
            0.7 * r0[parents],
            np.maximum(0.7 * unit, 0.5 * r0[parents]),
        ]
    )
    obj = np.concatenate([np.arange(1, n0 + n_enter + 1), 1 + parents])
    obj = np.concatenate([obj, np.arange(n_branch) + obj.max() + 1])
    parent_of = np.full(n_t, -1)
    parent_of[children] = parents
    between = np.full(n_t, -1)
    between[fillers] = children
    filler_of = np.full(n_t, -1)
    filler_of[children] = fillers

    # Anisotropy: neurites cut obliquely look elliptical (aspect up to ~2.2, mostly < 1.3).
    aspect = 1 + 1.2 * rng.random(n_t) ** 3
    theta = rng.uniform(0, np.pi, n_t)
    cos, sin = np.cos(theta), np.sin(theta)
    metric = np.stack(
        [
            cos**2 / aspect + sin**2 * aspect,
            cos * sin * (1 / aspect - aspect),
            sin**2 / aspect + cos**2 * aspect,
        ],
        axis=1,
    )

    # Drift: a smooth incompressible flow (bundles move together without crowding) plus a
    # little persistent individual wander; branches get an extra push apart.
    n_modes = 6
    ang = rng.uniform(0, 2 * np.pi, n_modes)
    wavelen = rng.uniform(150, 400, n_modes)
    k = np.stack([np.cos(ang), np.sin(ang)], 1) * (2 * np.pi / wavelen)[:, None]
    e = np.stack([-np.sin(ang), np.cos(ang)], 1)
    amp = _DRIFT * rng.uniform(0.5, 1.5, n_modes) / np.sqrt(n_modes / 2)
    modes = (k, e, amp, rng.uniform(0, 2 * np.pi, n_modes), rng.normal(0, 0.05, n_modes))
    wander = rng.normal(0, 0.4, (n_t, 2))
    split = rng.normal(size=(n_t, 2))
    split /= np.linalg.norm(split, axis=1, keepdims=True)
    split_speed = rng.uniform(1.8, 2.4, n_t)

    pos = np.full((nz, n_t, 2), np.nan)
    radius = np.zeros((nz, n_t))
    cur = np.full((n_t, 2), np.nan)
    cur[:n0] = p0
    for z in range(nz):
        active = (z_start <= z) & (z < z_stop)
        for t in np.flatnonzero(z_start == z) if z > 0 else []:
            if parent_of[t] >= 0:
                p = parent_of[t]
                split[p] = -split[t]
                cur[t] = cur[p] + split[t] * 0.3 * radius0[p]
            elif between[t] >= 0:
                cur[t] = 0.5 * (cur[between[t]] + cur[parent_of[between[t]]])
            else:
                cur[t] = [rng.uniform(0.2, 0.8) * ny, rng.uniform(0.2, 0.8) * nx]
        if z > 0:
            wander = 0.8 * wander + rng.normal(0, 0.25, (n_t, 2))
            moving = active & (z_start < z)
            step = _flow(cur[moving], z, modes) + wander[moving]
            cur[moving] += step
        # Branch siblings diverge until the neurite between them fits.
        for t in np.flatnonzero(active & (parent_of >= 0)):
            p = parent_of[t]
            gap = np.linalg.norm(cur[t] - cur[p])
            if z > z_start[t] and gap < radius0[t] + radius0[p] + 1.5 * radius0[filler_of[t]]:
                cur[t] += split[t] * split_speed[t]
                cur[p] += split[p] * split_speed[t]
        # Entering neurites swell in and ending ones taper off over a few slices.
        swell = np.where(z_start > 0, (z - z_start + 1) / 3.0, 1.0)
        taper = np.where(z_stop < nz, (z_stop - z) / 3.0, 1.0)
        r_now = radius0 * np.clip(np.minimum(swell, taper), 0.3, 1.0)
        # A branch point splits a neurite into two thinner ones.
        r_now[parents] *= np.where(z >= z_branch, 0.7, 1.0)
        idx = np.flatnonzero(active)
        cur[idx] = np.clip(_relax(cur[idx], r_now[idx], 3), lo, hi)
        # The separating neurite stays pinned between the siblings while they diverge.
        for f in np.flatnonzero(active & (between >= 0)):
            if z - z_start[f] < 8:
                cur[f] = 0.5 * (cur[between[f]] + cur[parent_of[between[f]]])
        pos[z, idx] = cur[idx]
        radius[z, idx] = r_now[idx]
    return _Tracks(pos=pos, radius=radius, metric=metric, obj=obj)


def _partition(tracks: _Tracks, z: int, grid_shape: tuple[int, int], pad: int) -> np.ndarray:
    """Assign every pixel of a padded slice to the centreline with the lowest weighted distance.

    The score of centreline ``i`` at pixel ``p`` is ``(|p - c_i|_M - r_i) / r_i**_BETA`` with an
    anisotropic norm ``M``: between the additive (hyperbolic edges) and multiplicative (circular
    edges) weighted Voronoi diagrams, so thin axons are round and thick dendrites wrap around
    them. Each centreline scores only a window in which its score can be below ``cap``; pixels
    whose best score exceeds ``cap`` are rescored against all centrelines, so the result is exact
    while the cost stays linear in the pixel count.
    """
    gy, gx = grid_shape
    best = np.full(grid_shape, np.inf, np.float32)
    best_obj = np.zeros(grid_shape, np.int32)
    idx = np.flatnonzero(tracks.radius[z] > 0)
    r_all = tracks.radius[z, idx]
    a, b, c = tracks.metric[idx].T
    lam_min = (a + c) / 2 - np.sqrt(((a - c) / 2) ** 2 + b**2)
    cap = 0.6 * np.median(r_all) ** (1 - _BETA)
    reach = (cap * r_all**_BETA + r_all) / np.sqrt(lam_min) + 1
    for t, r, w in zip(idx, r_all, reach, strict=True):
        cy, cx = tracks.pos[z, t] + pad
        y0, y1 = max(0, int(cy - w)), min(gy, int(cy + w) + 1)
        x0, x1 = max(0, int(cx - w)), min(gx, int(cx + w) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
        dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
        score = _score(tracks.metric[t], r, dy, dx)
        sub = best[y0:y1, x0:x1]
        win = score < sub
        np.copyto(sub, score, where=win)
        np.copyto(best_obj[y0:y1, x0:x1], tracks.obj[t], where=win)
    unsure = np.argwhere(best > cap)
    for chunk in np.array_split(unsure, max(1, len(unsure) // 4096)):
        if len(chunk) == 0:
            continue
        dy = (chunk[:, 0:1] - pad - tracks.pos[z, idx, 0][None, :]).astype(np.float32)
        dx = (chunk[:, 1:2] - pad - tracks.pos[z, idx, 1][None, :]).astype(np.float32)
        score = _score(tracks.metric[idx].T[:, None, :], r_all[None, :], dy, dx)
        best_obj[chunk[:, 0], chunk[:, 1]] = tracks.obj[idx[np.argmin(score, axis=1)]]
    return best_obj


def _score(metric: np.ndarray, r: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Weighted distance of offsets ``(dy, dx)`` from centrelines of radius ``r`` (broadcast)."""
    a, b, c = (np.asarray(m, np.float32) for m in metric)
    r = np.asarray(r, np.float32)
    dist = np.sqrt(a * dy * dy + 2 * b * dy * dx + c * dx * dx)
    return (dist - r) / r**_BETA


def _membrane_distance(
    lab: np.ndarray, width: float, corner: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return the membrane mask of a 2D label image and each pixel's distance beyond it.

    Even widths grow from the pixels on both sides of each label edge, odd widths from one
    side, so the membrane is ``round(width)`` pixels thick and always separates the labels.
    Cells are then opened with a disc of radius ``corner``: sharp Voronoi corners become
    rounded and junctions fill with small dark gaps, as between real neurites.
    """
    k = max(1, round(width))
    edge_y = lab[1:, :] != lab[:-1, :]
    edge_x = lab[:, 1:] != lab[:, :-1]
    base = np.zeros(lab.shape, bool)
    base[:-1, :] |= edge_y
    base[:, :-1] |= edge_x
    if k % 2 == 0:
        base[1:, :] |= edge_y
        base[:, 1:] |= edge_x
    grow = (k - 1) // 2 if k % 2 else (k - 2) // 2
    beyond = ndi.distance_transform_edt(~base) - grow
    # Opening: keep the pixels within `corner` of a point at least `corner` inside the cell.
    opened = ndi.distance_transform_edt(beyond < corner) <= corner
    membrane = (beyond <= 0) | ~opened
    return membrane, ndi.distance_transform_edt(~membrane).astype(np.float32)


def _merge_fragments(lab: np.ndarray, membrane: np.ndarray, lobes: np.ndarray) -> bool:
    """Give stray interior pieces of a cell to a neighbour, in place; True if any were found.

    Warping and rounding can cut a small piece off a cell. An object keeps as many interior
    pieces as it has centrelines in the slice (two after a branch) plus every piece touching
    the image border (a cell may leave the field of view and come back); other pieces go to
    the most common other label around them, so 2D splits in the ground truth are real.
    """
    pieces, n = ndi.label(~membrane)
    owner = np.zeros(n + 1, lab.dtype)
    owner[pieces.ravel()] = lab.ravel()
    size = np.bincount(pieces.ravel(), minlength=n + 1)
    border = np.zeros(n + 1, bool)
    border[np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]])] = True
    # Rank each object's pieces, border pieces first, then by size; interior pieces ranked
    # beyond the object's lobe count are strays.
    order = np.lexsort((-size[1:], ~border[1:], owner[1:])) + 1
    rank = np.arange(n) - np.searchsorted(owner[order], owner[order])
    strays = order[(rank >= lobes[owner[order]]) & ~border[order]]
    boxes = ndi.find_objects(pieces)
    for piece in strays:
        sl = tuple(slice(max(0, s.start - 8), s.stop + 8) for s in boxes[piece - 1])
        sub = lab[sl]
        mask = pieces[sl] == piece
        # Include the piece's own membrane rim, which still carries its old id.
        mask = ndi.binary_dilation(mask, iterations=3) & (sub == owner[piece])
        ring = ndi.binary_dilation(mask, iterations=4) & (sub != owner[piece])
        if ring.any():
            sub[mask] = np.bincount(sub[ring]).argmax()
    return len(strays) > 0


def _consecutive_ids(labels: np.ndarray) -> np.ndarray:
    """Renumber to ``1..N``; an id that vanishes for some slices continues as a new object."""
    nz = labels.shape[0]
    n_in = int(labels.max()) + 1
    present = np.stack([np.bincount(s.ravel(), minlength=n_in) > 0 for s in labels])
    present[:, 0] = False
    lut = np.zeros((nz, n_in), np.uint32)
    next_id = 1
    for old in np.flatnonzero(present.any(axis=0)):
        zs = np.flatnonzero(present[:, old])
        # A new run starts wherever the object was absent in the previous slice.
        for run in np.split(zs, np.flatnonzero(np.diff(zs) > 1) + 1):
            lut[run, old] = next_id
            next_id += 1
    return np.stack([lut[z][labels[z]] for z in range(nz)])


def _render(
    rng: np.random.Generator,
    raw: np.ndarray,
    membranes: np.ndarray,
    beyond: np.ndarray,
    tracks: _Tracks,
    noise: float,
) -> np.ndarray:
    """Paint the EM-like intensities for the raw (pre-renumbering) object ids."""
    nz, ny, nx = raw.shape
    n_obj = int(raw.max()) + 1
    cell_level = (160 + rng.normal(0, 10, n_obj)).astype(np.float32)

    # Granular cytoplasm (ribosomes, fixation) on blotchy shading and uneven staining.
    grain = rng.standard_normal(raw.shape, dtype=np.float32)
    grain = ndi.gaussian_filter(grain, (0, 0.9, 0.9))
    image = cell_level[raw] + 13.0 / 0.3 * grain  # blurred unit noise has std ~0.3
    image += rng.normal(0, 3, (nz, 1, 1)).astype(np.float32)  # section-to-section brightness
    image += 9.0 * _smooth_noise(rng, raw.shape, (1.0, 10.0, 10.0))  # blotches
    image += 8.0 * _smooth_noise(rng, raw.shape, (8.0, 90.0, 90.0))  # uneven staining

    # Vesicles (pale centre, dark rim) packed in some boutons, sparse dark specks (microtubules,
    # ER) everywhere: dark structures inside cells, so a naive threshold is not a membrane map.
    n_try = int(0.006 * raw.size)
    zz = rng.integers(0, nz, n_try)
    yy = rng.integers(0, ny, n_try)
    xx = rng.integers(0, nx, n_try)
    bouton = rng.random(n_obj) < 0.2
    inside = beyond[zz, yy, xx] > 3.5
    vesicle = inside & bouton[raw[zz, yy, xx]]
    speck = inside & ~vesicle & (rng.random(n_try) < 0.25)
    image -= 45.0 * _stamp(raw.shape, (zz[vesicle], yy[vesicle], xx[vesicle]), ring=True)
    image -= 35.0 * _stamp(raw.shape, (zz[speck], yy[speck], xx[speck]), ring=False)

    # Mitochondria: elliptical dark bodies with cristae, a few slices long, in thick neurites.
    _paint_mitochondria(rng, image, raw, tracks)

    # Membranes: dark, with a soft shoulder; darkness varies along them as in real sections.
    level = 52.0 + 14.0 * _smooth_noise(rng, raw.shape, (2.0, 25.0, 25.0))
    weight = np.where(membranes, 1.0, np.exp(-0.5 * (beyond / 1.1) ** 2)).astype(np.float32)
    image += weight * (level - image)

    image = ndi.gaussian_filter(image, (0, 0.7, 0.7))  # point-spread function of the microscope
    if noise > 0:
        image += np.float32(noise * 255) * rng.standard_normal(raw.shape, dtype=np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _stamp(shape: tuple[int, ...], where: tuple[np.ndarray, ...], *, ring: bool) -> np.ndarray:
    """Sum of small blobs (peak ~1) at the given voxels: dots, or rings with a pale centre."""
    impulses = np.zeros(shape, np.float32)
    np.add.at(impulses, where, 1.0)
    if ring:
        outer = ndi.gaussian_filter(impulses, (0, 2.2, 2.2)) * (2 * np.pi * 2.2**2)
        inner = ndi.gaussian_filter(impulses, (0, 1.2, 1.2)) * (2 * np.pi * 1.2**2)
        return np.clip(1.6 * outer - 0.9 * inner, 0.0, 1.5)
    return np.minimum(ndi.gaussian_filter(impulses, (0, 1.1, 1.1)) * (2 * np.pi * 1.1**2), 1.5)


def _paint_mitochondria(
    rng: np.random.Generator, image: np.ndarray, raw: np.ndarray, tracks: _Tracks
) -> None:
    """Darken ``image`` in place with mitochondria that follow their neurite's centreline."""
    nz, ny, nx = raw.shape
    r_max = tracks.radius.max(axis=0)
    hosts = np.flatnonzero((r_max >= 16) & (rng.random(len(r_max)) < 0.15))
    for t in hosts:
        zs = np.flatnonzero(tracks.radius[:, t] > 0)
        length = int(rng.integers(3, 12))
        z0 = int(rng.integers(zs[0], max(zs[0] + 1, zs[-1] - length + 2)))
        r = r_max[t]
        semi_major = min(rng.uniform(0.45, 0.75) * r, 40.0)
        semi_minor = semi_major * rng.uniform(0.5, 0.85)
        offset = rng.normal(0, 0.1 * r, 2)
        rot = rng.uniform(0, np.pi)
        period = rng.uniform(4.5, 7.0)
        for z in range(z0, min(z0 + length, zs[-1] + 1)):
            if not tracks.radius[z, t] > 0:
                continue
            cy, cx = tracks.pos[z, t] + offset
            rr, cc = ellipse(cy, cx, semi_minor, semi_major, (ny, nx), rotation=rot)
            own = raw[z, rr, cc] == tracks.obj[t]
            rr, cc = rr[own], cc[own]
            # Normalised elliptical radius: 1 at the outline, which is the dark double membrane.
            v = (rr - cy) * np.cos(rot) + (cc - cx) * np.sin(rot)
            u = (cc - cx) * np.cos(rot) - (rr - cy) * np.sin(rot)
            rho = np.hypot(u / semi_major, v / semi_minor)
            rim = np.exp(-0.5 * ((1 - rho) * semi_minor / 1.5) ** 2)
            cristae = 0.5 + 0.5 * np.cos(2 * np.pi * u / period)
            image[z, rr, cc] -= 30.0 + 30.0 * cristae + 30.0 * rim


def make_synthetic_stack(
    shape: tuple[int, int, int] = (16, 256, 256),
    *,
    seed: int | None = 0,
    n_neurites: int | None = None,
    membrane_width: float = 2.0,
    noise: float = 0.08,
    scale: tuple[float, float, float] = (50.0, 4.0, 4.0),
) -> SyntheticStack:
    """Generate a synthetic ssTEM-like stack of densely packed neurites with ground truth.

    Neurites are centrelines running along z that drift a few pixels per slice; each slice is
    shared among the centrelines present by a weighted, warped Voronoi partition, so cells have
    curvy outlines and a wide range of sizes. Some neurites end inside the stack, some enter it
    and some branch (both branches keep one 3D id). Pixels on the boundary between different
    neurites are membrane (label 0, dark in the image). The result is deterministic for a seed.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` size; Z >= 2 and Y, X >= 32.
    seed : int or None
        Seed of the random generator; None gives a different stack every call.
    n_neurites : int, optional
        Approximate number of neurites crossing one slice; by default one per ~1800 px^2
        (about 36 in a 256 x 256 slice).
    membrane_width : float
        Thickness of the membrane (label 0) between neighbouring cells, in pixels.
    noise : float
        Standard deviation of the additive Gaussian noise, relative to 255.
    scale : tuple of float
        Voxel size ``(z, y, x)`` in nm, carried through to the result.

    Returns
    -------
    SyntheticStack
        uint8 image, uint32 labels ``1..N`` (0 on membranes), bool membrane mask and scale.

    Raises
    ------
    ValueError
        If the shape is not 3D or too small, or an option is out of range.

    Examples
    --------
    >>> stack = make_synthetic_stack((4, 64, 64), seed=1)
    >>> stack.image.shape, stack.image.dtype, stack.labels.dtype
    ((4, 64, 64), dtype('uint8'), dtype('uint32'))
    >>> bool(((stack.labels == 0) == stack.membranes).all())
    True
    """
    nz, ny, nx = _validate(shape, n_neurites, membrane_width, noise, scale)
    rng = np.random.default_rng(seed)
    n_view = n_neurites if n_neurites is not None else max(1, round(ny * nx / _CELL_AREA))
    margin = int(np.ceil(0.8 * np.sqrt(ny * nx / n_view)))
    corner = _CORNER * np.sqrt(ny * nx / n_view / np.pi)
    tracks = _simulate_tracks(rng, (nz, ny, nx), n_view, margin)

    # Partition a padded grid, then pull it through a smooth warp so Voronoi edges curve.
    warp_y, warp_x = (
        sum(amp * _smooth_noise(rng, (nz, ny, nx), (4.0, corr, corr)) for amp, corr in _WARP)
        for _axis in range(2)
    )
    pad = int(np.ceil(4 * sum(amp for amp, _ in _WARP))) + 1
    grid = (ny + 2 * pad, nx + 2 * pad)
    iy, ix = np.mgrid[0:ny, 0:nx]
    raw = np.empty((nz, ny, nx), np.int32)
    membranes = np.empty((nz, ny, nx), bool)
    beyond = np.empty((nz, ny, nx), np.float32)
    for z in range(nz):
        cells = _partition(tracks, z, grid, pad)
        sy = np.clip(np.rint(iy + pad + warp_y[z]), 0, grid[0] - 1).astype(np.intp)
        sx = np.clip(np.rint(ix + pad + warp_x[z]), 0, grid[1] - 1).astype(np.intp)
        raw[z] = cells[sy, sx]
        membranes[z], beyond[z] = _membrane_distance(raw[z], membrane_width, corner)
        lobes = np.bincount(tracks.obj[tracks.radius[z] > 0], minlength=raw[z].max() + 1)
        if _merge_fragments(raw[z], membranes[z], lobes):
            membranes[z], beyond[z] = _membrane_distance(raw[z], membrane_width, corner)

    image = _render(rng, raw, membranes, beyond, tracks, noise)
    labels = _consecutive_ids(np.where(membranes, 0, raw))
    return SyntheticStack(
        image=image,
        labels=labels,
        membranes=labels == 0,
        scale=(float(scale[0]), float(scale[1]), float(scale[2])),
    )


# The physical pixel size the renderer's geometry corresponds to: its cells have a mean
# distance to the nearest membrane of about 8 px, as real neuropil has about 50 nm
# (docs/results/pixel-size-estimate.md). ``scale``'s default of 4 nm is a label only.
RENDER_PIXEL_NM = 6.0


def make_synthetic_stack_at(
    shape: tuple[int, int, int],
    pixel_nm: float,
    *,
    section_nm: float = 50.0,
    seed: int | None = 0,
    noise: float = 0.08,
) -> SyntheticStack:
    """The synthetic stack as a microscope with ``pixel_nm`` pixels would image it.

    The stack is rendered at :data:`RENDER_PIXEL_NM` over the same field of view and resampled
    to ``shape`` (area-averaged image, nearest-neighbour labels), so cells keep their physical
    size: a stack at 12 nm shows them a third as wide as one at 4 nm.

    Examples
    --------
    >>> fine = make_synthetic_stack_at((2, 96, 96), 4.0)
    >>> coarse = make_synthetic_stack_at((2, 48, 48), 8.0)
    >>> fine.scale, coarse.scale, coarse.image.shape
    ((50.0, 4.0, 4.0), (50.0, 8.0, 8.0), (2, 48, 48))
    """
    from scipy import ndimage as ndi

    if not pixel_nm > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_nm!r}")
    nz, ny, nx = (int(s) for s in shape)
    factor = pixel_nm / RENDER_PIXEL_NM  # render pixels per output pixel
    rendered = (nz, max(32, round(ny * factor)), max(32, round(nx * factor)))
    # Membranes are 2 px at the render's 6 nm; they stay 12 nm wide whatever the output.
    stack = make_synthetic_stack(rendered, seed=seed, noise=noise)
    zoom = (1.0, ny / rendered[1], nx / rendered[2])
    image = stack.image.astype(np.float32)
    if factor > 1:  # shrinking: average the render pixels that fall in one output pixel
        image = ndi.gaussian_filter(image, (0, 0.4 * factor, 0.4 * factor))
    image = ndi.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
    labels = ndi.zoom(stack.labels, zoom, order=0, grid_mode=True, mode="nearest")
    return SyntheticStack(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        labels=labels.astype(np.uint32),
        membranes=labels == 0,
        scale=(float(section_nm), float(pixel_nm), float(pixel_nm)),
    )
