"""The propagation method chosen on two or more corrected slices, leave one out.

Propagating from a corrected slice consumes it: its own score would be perfect. So each method
propagates from every corrected slice to its neighbouring corrected slices (and back) and is
scored on the slices it did not start from.
"""

from collections.abc import Callable

import numpy as np

from napari_emseg._progress import CancelCheck, check_cancel
from napari_emseg.calibration.report import Choice
from napari_emseg.calibration.scoring import slice_error


def leave_one_out_pairs(slices: list[int]) -> list[tuple[int, int]]:
    """(start, scored) pairs: each corrected slice to its neighbours among them.

    Examples
    --------
    >>> leave_one_out_pairs([3, 9, 20])
    [(3, 9), (9, 3), (9, 20), (20, 9)]
    """
    ordered = sorted(set(slices))
    pairs = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        pairs += [(a, b), (b, a)]
    return pairs


def choose_method(
    image: np.ndarray,
    labels: np.ndarray,
    slices: list[int],
    *,
    membrane: np.ndarray,
    methods: list[str],
    default: str,
    run: Callable[..., np.ndarray],
    cancel: CancelCheck | None = None,
) -> Choice | None:
    """The method whose propagations between corrected slices reproduce them best.

    ``run(image, labels, ref, membrane=, method=, z_range=)`` propagates (the facade's options
    bound). Returns None with fewer than two slices.
    """
    pairs = leave_one_out_pairs(slices)
    if not pairs:
        return None
    scores: dict[str, float] = {}
    for method in dict.fromkeys([default, *methods]):
        errors = []
        for start, scored in pairs:
            check_cancel(cancel)
            only = np.zeros_like(labels)
            only[start] = labels[start]
            span = (min(start, scored), max(start, scored))
            out = run(image, only, start, membrane=membrane, method=method, z_range=span)
            errors.append(slice_error(out[scored], labels[scored]))
        scores[method] = float(np.mean(errors))
    chosen = min(scores, key=lambda m: (scores[m], m != default))
    return Choice(
        name="method",
        value=chosen,
        default=default,
        score=scores[chosen],
        default_score=scores[default],
        scored_on=sorted({b for _, b in pairs}),
        candidates={m: round(s, 4) for m, s in scores.items()},
        how="adapted Rand error on each corrected slice, propagated from its neighbours",
    )
