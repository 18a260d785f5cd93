"""A simulated proofreader: how many edits turn a segmentation into the ground truth.

The oracle knows the ground truth. Each round it takes the largest remaining error of the
contingency table (by voxels): a *false merge* (a segment holding voxels of a ground-truth
object other than its dominant one), a *false split* (a ground-truth object's voxels in a
segment other than its main one) or unlabelled voxels. It goes to the slice where that error is
largest and fixes it there with the Proofread widget's tools
(:mod:`napari_emseg.proofreading.edits`): a merge of the whole object, a split with one seed per
ground-truth object or a merge in that slice, and the brush (``paint``) where neither helps.
Like a user pressing "Add reference slice" and then "Repropagate edited", a slice edit makes its
slice a reference and the objects it changed are carried through z by
:func:`napari_emseg.proofreading.repropagate`, with the widget's arguments, over the slices the
error spans (the widget's z range).

Each edit is chosen as a user judges it on screen: a whole-object merge must lower the error of
the volume, a slice edit the error of its slice (or keep it and lower the volume's). A
repropagation that raises the error is undone, and the undo (Ctrl+Z) is one more edit. An edit
that would bring back a state already seen is refused, so the oracle cannot go round in
circles, and an (error, slice) that no tool improves is skipped for good; with the cap on edits
the loop always ends. Deleting is never chosen: voxels set to 0 count as singletons, so a
deletion cannot lower the adapted Rand error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from napari_emseg._progress import ProgressCallback, report
from napari_emseg.metrics import adapted_rand_error
from napari_emseg.proofreading.edits import Diff, diff_between, merge_objects, split_object
from napari_emseg.proofreading.repropagate import repropagate
from napari_emseg.proofreading.session import ProofreadingSession

EDIT_KINDS = ("merge", "split", "paint", "undo")
REPROPAGATE = "repropagate"
# A split seeds ground-truth objects holding at least this many voxels of the segment's slice
# (and always the one being fixed): nobody seeds a 3-pixel sliver on a membrane.
MIN_SEED_PART = 10
_ID_LIMIT = np.iinfo(np.uint32).max


@dataclass(frozen=True)
class Step:
    """One step of the simulation: an edit (one user action) or a repropagation.

    ``kind`` is an edit kind or ``"repropagate"``; ``voxels`` the voxels it changed, ``are``
    the adapted Rand error after it, ``seconds`` its engine time and ``z`` its slice (None for
    a whole-object merge and for repropagations).
    """

    kind: str
    voxels: int
    are: float
    seconds: float
    z: int | None = None
    diff: Diff | None = field(default=None, repr=False, compare=False)  # with keep_diffs


@dataclass
class OracleResult:
    """What proofreading a segmentation to the target cost.

    Attributes
    ----------
    labels : ndarray
        The final labels.
    actions : dict of str to int
        Edits made, by kind (``merge``, ``split``, ``paint``, ``undo``).
    steps : list of Step
        Every edit and repropagation in order, each with the voxels it changed and the adapted
        Rand error after it.
    engine_seconds : float
        Time of the edits and repropagations made (what a user waits for).
    wall_seconds : float
        Time of the whole simulation, previews and bookkeeping included.
    initial_are, final_are : float
        Adapted Rand error of the start and of the final labels (computed afresh).
    target_are : float
    max_actions : int
        The cap on edits.
    reached : bool
        Whether ``final_are <= target_are``.
    stop_reason : str
    skipped : int
        Errors (at one slice) that no tool lowered.
    references : list of int
        The reference slices at the end (the start's and every slice edited).
    """

    labels: np.ndarray
    actions: dict[str, int]
    steps: list[Step]
    engine_seconds: float
    wall_seconds: float
    initial_are: float
    final_are: float
    target_are: float
    max_actions: int
    reached: bool
    stop_reason: str
    skipped: int = 0
    references: list[int] = field(default_factory=list)

    @property
    def total_actions(self) -> int:
        """Number of edits (repropagations are not counted)."""
        return sum(self.actions.values())

    @property
    def repropagations(self) -> int:
        return sum(1 for s in self.steps if s.kind == REPROPAGATE)

    @property
    def repropagation_seconds(self) -> float:
        return sum(s.seconds for s in self.steps if s.kind == REPROPAGATE)

    @property
    def history(self) -> list[tuple[str, int, float]]:
        """(kind, voxels changed, ARE after) of every step."""
        return [(s.kind, s.voxels, s.are) for s in self.steps]

    def curve(self) -> tuple[list[int], list[float]]:
        """ARE after 0, 1, 2, ... edits (an edit's repropagation included)."""
        actions, ares = [0], [self.initial_are]
        for step in self.steps:
            if step.kind == REPROPAGATE:
                ares[-1] = step.are
            else:
                actions.append(actions[-1] + 1)
                ares.append(step.are)
        return actions, ares


def _f_are(sum_n2: int, sum_s2: int, sum_t2: int) -> float:
    """Adapted Rand error from its three sums, as :func:`napari_emseg.metrics` computes it."""
    p, r = sum_n2 / sum_s2, sum_n2 / sum_t2
    return 1.0 - (0.0 if p + r == 0 else 2.0 * p * r / (p + r))


class _Table:
    """Contingency table (gt id, segment id) -> voxels, updated by diffs; gt 0 is left out.

    Keeps the adapted Rand error's sums as exact integers, so each update costs the size of
    the diff, not of the volume.
    """

    def __init__(self, labels: np.ndarray, gt: np.ndarray):
        fg = gt != 0
        g, s = gt[fg].astype(np.int64), labels[fg].astype(np.int64)
        keys, counts = np.unique((g << 32) | s, return_counts=True)
        self.pairs = {int(k): int(c) for k, c in zip(keys, counts, strict=True)}
        sizes = np.bincount(g)
        self.sum_t2 = int(np.dot(sizes, sizes))
        self.seg_size: dict[int, int] = {}
        self.n_zero = self.sum_n2 = self.sum_s2 = 0
        for key, c in self.pairs.items():
            self._count(key, c, 0)

    def _count(self, key: int, after: int, before: int) -> None:
        s = key & 0xFFFFFFFF
        delta = after - before
        if s == 0:
            self.n_zero += delta
            return
        self.sum_n2 += after * after - before * before
        size = self.seg_size.get(s, 0)
        self.seg_size[s] = size + delta
        self.sum_s2 += (size + delta) ** 2 - size * size

    def update(self, gt_values: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Move voxels (their gt ids given) from their old segment ids to the new ones."""
        keep = (gt_values != 0) & (old != new)
        g = gt_values[keep].astype(np.int64) << 32
        for sign, ids in ((-1, old[keep]), (1, new[keep])):
            keys, counts = np.unique(g | ids.astype(np.int64), return_counts=True)
            for key, c in zip(keys.tolist(), counts.tolist(), strict=True):
                before = self.pairs.get(key, 0)
                after = before + sign * c
                if after:
                    self.pairs[key] = after
                else:
                    del self.pairs[key]
                self._count(key, after, before)

    def signature(self) -> int:
        """A hash of the table: equal tables, equal signatures."""
        return hash(frozenset(self.pairs.items()))

    def are(self) -> float:
        n2 = self.sum_n2 + self.n_zero
        return _f_are(n2, self.sum_s2 + self.n_zero, self.sum_t2)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = np.fromiter(self.pairs.keys(), np.int64, len(self.pairs))
        counts = np.fromiter(self.pairs.values(), np.int64, len(self.pairs))
        return keys >> 32, keys & 0xFFFFFFFF, counts


def _best_by(key: np.ndarray, other: np.ndarray, counts: np.ndarray) -> dict[int, int]:
    """For each ``key``, the ``other`` with the most voxels (ties: the smaller id)."""
    if key.size == 0:
        return {}
    order = np.lexsort((other, -counts, key))
    k, o = key[order], other[order]
    first = np.r_[True, k[1:] != k[:-1]]
    return dict(zip(k[first].tolist(), o[first].tolist(), strict=True))


def _errors(table: _Table) -> tuple[list[tuple[str, int, int]], dict[int, int], dict[int, int]]:
    """Errors as (kind, gt id, segment id), largest first; the dominant and main id maps."""
    g, s, c = table.arrays()
    lab = s != 0
    dominant = _best_by(s[lab], g[lab], c[lab])  # segment -> its largest gt object
    main = _best_by(g[lab], s[lab], c[lab])  # gt object -> its largest segment
    found = []
    for gi, si, ci in zip(g.tolist(), s.tolist(), c.tolist(), strict=True):
        if si == 0:
            found.append((ci, gi, si, "unlabelled"))
        elif dominant[si] != gi:
            found.append((ci, gi, si, "false merge"))
        elif main[gi] != si:
            found.append((ci, gi, si, "false split"))
    found.sort(key=lambda e: (-e[0], e[1], e[2]))
    return [(kind, gi, si) for _, gi, si, kind in found], dominant, main


def _interior_point(region: np.ndarray) -> tuple[int, int]:
    """The pixel of a 2D mask farthest from its edge (a seed a user would click)."""
    distance = ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), region.shape)
    return int(y), int(x)


@dataclass
class _Option:
    kind: str
    diff: Diff
    local: bool  # a slice edit, followed by a repropagation
    z: int | None
    seconds: float  # to compute the diff: part of the edit's engine time
    span: tuple[int, int] | None = None  # slices the error spans: the repropagation's z range


def _option(kind: str, local: bool, z: int | None, make: Callable[[], Diff]) -> _Option:
    start = time.perf_counter()
    diff = make()
    return _Option(kind, diff, local, z, time.perf_counter() - start)


class _Oracle:
    def __init__(self, image, gt, labels, membrane, references, config: dict):
        self.image, self.gt, self.membrane = image, gt, membrane
        self.labels = labels
        self.config = config
        self.table = _Table(labels, gt)
        self.boxes = ndi.find_objects(gt)
        self.session = ProofreadingSession()
        for z in references:
            self.session.add_reference(z)
        self.session.snapshot_reference(labels)
        self.tried: set[tuple[int, int, int]] = set()
        self.seen = {self.table.signature()}
        self.steps: list[Step] = []
        self.actions = dict.fromkeys(EDIT_KINDS, 0)
        self.skipped = 0
        self.engine_seconds = 0.0

    # -- choosing ----------------------------------------------------------------------------
    def _slices_of(self, g: int, s: int) -> tuple[list[int], tuple[int, int]]:
        """Untried slices holding gt object g in segment s, most voxels first; the error's span."""
        box = self.boxes[g - 1]
        first = box[0].start
        profile = ((self.gt[box] == g) & (self.labels[box] == s)).sum(axis=(1, 2))
        present = np.flatnonzero(profile)
        order = present[np.argsort(-profile[present], kind="stable")] + first
        slices = [int(z) for z in order if (g, s, int(z)) not in self.tried]
        return slices, (first + int(present[0]), first + int(present[-1]))

    def _new_id(self) -> int:
        top = int(self.labels.max(initial=0)) + 1
        if top > _ID_LIMIT:
            raise ValueError("no free id left below 2**32")
        return top

    def _paint(self, g: int, s: int, z: int, target: int) -> _Option:
        def brush() -> Diff:
            ys, xs = np.nonzero((self.gt[z] == g) & (self.labels[z] == s))
            zs = np.full(ys.size, z, np.intp)
            return Diff((zs, ys, xs), np.full(ys.size, target, self.labels.dtype))

        return _option("paint", True, z, brush)

    def _split(self, g: int, s: int, z: int, keeper: int) -> _Option | None:
        mask = self.labels[z] == s
        ids, counts = np.unique(self.gt[z][mask], return_counts=True)
        # Every object big enough to click, the one being fixed, and what keeps the id.
        parts = [
            (int(c), int(k))
            for k, c in zip(ids, counts, strict=True)
            if k != 0 and (c >= self.config["min_seed_part"] or k in (g, keeper))
        ]
        if len(parts) < 2:
            return None
        parts.sort(key=lambda p: (p[1] != keeper, -p[0], p[1]))
        seeds = [(z, *_interior_point(mask & (self.gt[z] == k))) for _, k in parts]

        def split() -> Diff:
            return split_object(self.labels, s, seeds, membrane=self.membrane)

        try:
            return _option("split", True, z, split)
        except ValueError:
            return None

    def _options(self, kind: str, g: int, s: int, z: int, dominant, main) -> list[list[_Option]]:
        """Candidate fixes in tiers, tried in order: whole-object merges, one-click slice
        edits, then the brush."""
        new = self._new_id()
        target = main.get(g)
        if target in (None, s):
            target = new
        labels = self.labels
        brush = [self._paint(g, s, z, t) for t in sorted({target, new})]
        if kind == "unlabelled":
            return [brush]
        slice_merge = _option("merge", True, z, lambda: merge_objects(labels, target, [s], z=z))
        if kind == "false split":
            whole = _option("merge", False, None, lambda: merge_objects(labels, target, [s]))
            return [[whole], [slice_merge], brush]
        split = self._split(g, s, z, dominant[s])
        return [[slice_merge] if split is None else [split, slice_merge], brush]

    def _slice_are(self, z: int, diff: Diff | None = None) -> float:
        plane = self.labels[z]
        if diff is not None:
            plane = plane.copy()
            plane[diff.indices[1:]] = diff.values
        return adapted_rand_error(plane, self.gt[z])

    def _are_after(self, diff: Diff) -> tuple[float, bool]:
        """The volume's ARE after ``diff`` and whether that state was seen; nothing is kept."""
        g, old = self.gt[diff.indices], self.labels[diff.indices]
        self.table.update(g, old, diff.values)
        are, seen = self.table.are(), self.table.signature() in self.seen
        self.table.update(g, diff.values, old)
        return are, seen

    def _candidates(self, tier: list[_Option], z: int, before: float) -> list[_Option]:
        """The tier's edits that a user would see fix the error, the best-looking first."""
        ranked, now = [], None
        for i, option in enumerate(tier):
            if not option.diff.size:
                continue
            are, seen = self._are_after(option.diff)
            if seen:
                continue
            if not option.local:
                if are < before:
                    ranked.append(((are, are), i, option))
                continue
            # A slice edit is judged in its slice: its 3D effect comes with the repropagation.
            now = (self._slice_are(z), before) if now is None else now
            looks = (self._slice_are(z, option.diff), are)
            if looks < now:
                ranked.append((looks, i, option))
        return [option for *_, option in sorted(ranked)]

    def next_fix(self) -> _Option | None:
        before = self.table.are()
        errors, dominant, main = _errors(self.table)
        for kind, g, s in errors:
            slices, span = self._slices_of(g, s)
            for z in slices:  # where the error is largest first
                for tier in self._options(kind, g, s, z, dominant, main):
                    found = self._candidates(tier, z, before)
                    if found:
                        found[0].span = span
                        return found[0]
                self.tried.add((g, s, z))  # no tool improves it here: never again
                self.skipped += 1
        return None

    # -- doing -------------------------------------------------------------------------------
    def _apply(self, diff: Diff) -> None:
        self.table.update(self.gt[diff.indices], self.labels[diff.indices], diff.values)
        diff.apply(self.labels)

    def _record(self, kind: str, diff: Diff, seconds: float, z: int | None) -> None:
        self.engine_seconds += seconds
        self.seen.add(self.table.signature())
        kept = diff if self.config["keep_diffs"] else None
        self.steps.append(Step(kind, diff.size, self.table.are(), seconds, z, kept))
        if kind != REPROPAGATE:
            self.actions[kind] += 1

    def make(self, option: _Option) -> None:
        """Make the edit (its slice becomes a reference first) and repropagate a slice edit."""
        start = time.perf_counter()
        repropagating = option.local and self.config["repropagation"]
        if repropagating:
            self.session.add_reference(option.z)  # "Add reference slice" snapshots the refs
            self.session.snapshot_reference(self.labels)
        if option.kind == "paint":
            self.session.mark_edited(option.z)
        self._apply(option.diff)
        seconds = option.seconds + time.perf_counter() - start
        self._record(option.kind, option.diff, seconds, option.z)
        if repropagating:
            self._repropagate(option.span)

    def _repropagate(self, span: tuple[int, int] | None) -> None:
        """ "Repropagate edited" over the error's slices; Ctrl+Z when it made things worse."""
        before = self.table.are()
        changed = self.session.changed_objects(self.labels) - self.session.locked
        start = time.perf_counter()
        out = repropagate(
            self.image,
            self.labels,
            references=sorted(self.session.reference_slices),
            objects=changed,
            locked=self.session.locked,
            frozen_slices=self.session.frozen_slices(),
            z_range=span,
            membrane=self.membrane,
            method=self.config["method"],
            device=self.config["device"],
            method_options=self.config["method_options"],
        )
        if int(out.max(initial=0)) > _ID_LIMIT:
            raise ValueError("the repropagation needed ids beyond 2**32")
        diff = diff_between(self.labels, out.astype(self.labels.dtype, copy=False))
        inverse = diff.inverse(self.labels)
        self._apply(diff)
        self._record(REPROPAGATE, diff, time.perf_counter() - start, None)
        self.session.snapshot_reference(self.labels)
        room = sum(self.actions.values()) < self.config["max_actions"]
        if self.table.are() > before and room:  # at the cap, no edit is left for Ctrl+Z
            start = time.perf_counter()
            self._apply(inverse)
            self._record("undo", inverse, time.perf_counter() - start, None)


def _check(image: np.ndarray, gt: np.ndarray, labels: np.ndarray) -> None:
    if image.ndim != 3 or gt.shape != image.shape or labels.shape != image.shape:
        raise ValueError(
            f"image, gt and labels must be (Z, Y, X) volumes of one shape, got {image.shape}, "
            f"{gt.shape} and {labels.shape}"
        )
    for name, arr in (("gt", gt), ("labels", labels)):
        if arr.dtype.kind not in "iub":
            raise ValueError(f"{name} must hold integer ids, got {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > _ID_LIMIT):
            raise ValueError(f"{name} ids must lie in 0..{_ID_LIMIT}")
    if not gt.any():
        raise ValueError("the ground truth has no labelled voxel (it is 0 everywhere)")


def simulate_proofreading(
    image: np.ndarray,
    gt: np.ndarray,
    labels: np.ndarray,
    *,
    membrane: np.ndarray | None = None,
    references: Iterable[int] = (),
    target_are: float = 0.05,
    max_actions: int = 200,
    repropagation: bool = True,
    method: str | None = None,
    method_options: dict | None = None,
    model: str | None = None,
    device: str = "auto",
    min_seed_part: int = MIN_SEED_PART,
    keep_diffs: bool = False,
    progress: ProgressCallback | None = None,
) -> OracleResult:
    """Proofread ``labels`` towards ``gt`` with the widget's tools and count the edits.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The EM stack.
    gt : ndarray of int, shape (Z, Y, X)
        Ground-truth ids; 0 = boundary, ignored by the score.
    labels : ndarray of int, shape (Z, Y, X)
        The segmentation to start from (not modified).
    membrane : ndarray, optional
        Membrane probability (1 = membrane) for splits and repropagations, as the widget's
        membrane layer; predicted once with ``model`` when omitted.
    references : iterable of int
        Slices that are references from the start (e.g. the slice the labels came from).
    target_are : float
        Stop once the adapted Rand error is at most this.
    max_actions : int
        Stop after this many edits (an undo is one; at the cap a bad repropagation stays).
    repropagation : bool
        Repropagate after each slice edit (False: a user without the plugin's propagation).
    method, method_options, device : optional
        Propagation method of the repropagations (the widget's default when None), its
        options (e.g. ``{"pixel_nm": 8.0}`` for ``cconvlstm``) and device.
    model : str, optional
        Membrane model used when ``membrane`` is omitted.
    min_seed_part : int
        Smallest part (voxels of a ground-truth object in the slice) that a split seeds.
    keep_diffs : bool
        Keep every step's :class:`~napari_emseg.proofreading.edits.Diff` in :attr:`Step.diff`
        (to replay or audit them).
    progress : callable, optional
        ``progress(done, max_actions, message)`` after each edit.

    Returns
    -------
    OracleResult

    Examples
    --------
    >>> gt = np.zeros((2, 8, 8), np.uint16); gt[:, :, :4], gt[:, :, 4:] = 1, 2
    >>> start = gt.copy(); start[1, :, 4:] = 3  # object 2 split in two along z
    >>> image = np.full(gt.shape, 128, np.uint8); membrane = np.zeros(gt.shape, np.float32)
    >>> result = simulate_proofreading(image, gt, start, membrane=membrane, target_are=0.0)
    >>> result.final_are, result.actions["merge"], result.total_actions
    (0.0, 1, 1)
    """
    image, gt, labels = np.asarray(image), np.asarray(gt), np.asarray(labels)
    _check(image, gt, labels)
    if not 0.0 <= target_are < 1.0:
        raise ValueError(f"target_are must lie in [0, 1), got {target_are}")
    if max_actions < 0:
        raise ValueError(f"max_actions must be >= 0, got {max_actions}")
    refs = sorted({int(z) for z in references})
    if any(not 0 <= z < image.shape[0] for z in refs):
        raise ValueError(f"reference slices {refs} must lie in 0..{image.shape[0] - 1}")
    start = time.perf_counter()
    if membrane is None:
        from napari_emseg.inference.membrane import predict_membrane

        membrane = predict_membrane(image, model=model, device=device)
    elif membrane.shape != image.shape:
        raise ValueError(f"membrane shape {membrane.shape} differs from the image {image.shape}")
    config = {
        "min_seed_part": int(min_seed_part),
        "repropagation": bool(repropagation),
        "method": method,
        "method_options": method_options,
        "device": device,
        "keep_diffs": bool(keep_diffs),
        "max_actions": int(max_actions),
    }
    oracle = _Oracle(image, gt.astype(np.uint32), labels.astype(np.uint32), membrane, refs, config)
    initial = oracle.table.are()
    stop = "target reached"
    while oracle.table.are() > target_are:
        if sum(oracle.actions.values()) >= max_actions:
            stop = f"max actions ({max_actions}) reached"
            break
        option = oracle.next_fix()
        if option is None:
            stop = "no error left that a tool lowers"
            break
        oracle.make(option)
        done = sum(oracle.actions.values())
        report(progress, done, max_actions, f"{done} edits, ARE {oracle.table.are():.4f}")

    final = adapted_rand_error(oracle.labels, gt)  # afresh: the table must agree with it
    return OracleResult(
        labels=oracle.labels,
        actions=oracle.actions,
        steps=oracle.steps,
        engine_seconds=oracle.engine_seconds,
        wall_seconds=time.perf_counter() - start,
        initial_are=initial,
        final_are=final,
        target_are=float(target_are),
        max_actions=int(max_actions),
        reached=final <= target_are,
        stop_reason=stop,
        skipped=oracle.skipped,
        references=sorted(oracle.session.reference_slices),
    )
