"""What a calibration chose, with the scores that chose it (reported by the CLI, GUI and API)."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Choice:
    """One data-dependent setting chosen on the corrected slices.

    Attributes
    ----------
    name : str
        What was chosen (``"threshold"``, ``"pixel_nm"``, ``"method"``).
    value : Any
        The chosen value.
    default : Any
        The value without calibration.
    score, default_score : float
        Adapted Rand error of the chosen and of the default value on ``scored_on`` (lower is
        better).
    scored_on : list of int
        Corrected slices the scores were measured on.
    candidates : dict
        Every value tried (as text) and its score.
    how : str
        One line: how the score was measured.
    """

    name: str
    value: Any
    default: Any
    score: float
    default_score: float
    scored_on: list[int]
    candidates: dict[str, float] = field(default_factory=dict)
    how: str = ""

    def line(self) -> str:
        """One line for a status bar or a log.

        Examples
        --------
        >>> Choice("threshold", 0.6, 0.8, 0.03, 0.08, [25]).line()
        'threshold 0.6 (error 0.030 on slice 25; default 0.8: 0.080)'
        """
        slices = ", ".join(str(z) for z in self.scored_on)
        where = f"slice{'s' if len(self.scored_on) > 1 else ''} {slices}"
        text = f"{self.name} {_fmt(self.value)} (error {self.score:.3f} on {where}"
        if self.value != self.default:
            text += f"; default {_fmt(self.default)}: {self.default_score:.3f}"
        return text + ")"


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Calibration:
    """Everything a calibration chose, or why it was skipped.

    Attributes
    ----------
    slices : list of int
        The corrected slices it used.
    choices : dict of str to Choice
    skipped : str or None
        Why nothing (or not everything) was calibrated, in one line.
    seconds : float
    """

    slices: list[int] = field(default_factory=list)
    choices: dict[str, Choice] = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0
    # The agglomeration the threshold was chosen on, reused by the propagation (not reported).
    hierarchy: Any = field(default=None, repr=False, compare=False)

    def value(self, name: str, default: Any = None) -> Any:
        """The chosen value of ``name``, or ``default`` when it was not calibrated."""
        choice = self.choices.get(name)
        return default if choice is None else choice.value

    def summary(self) -> str:
        """One line: what was chosen, or why calibration was skipped.

        Examples
        --------
        >>> Calibration(skipped="reference slice 3 holds 2 objects").summary()
        'calibration skipped: reference slice 3 holds 2 objects'
        """
        if not self.choices:
            return f"calibration skipped: {self.skipped or 'nothing to calibrate'}"
        text = "calibrated " + "; ".join(c.line() for c in self.choices.values())
        if self.skipped:
            text += f" ({self.skipped})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the CLI's result line)."""
        return {
            "summary": self.summary(),
            "slices": self.slices,
            "choices": {k: asdict(c) for k, c in self.choices.items()},
            "skipped": self.skipped,
            "seconds": round(self.seconds, 2),
        }
