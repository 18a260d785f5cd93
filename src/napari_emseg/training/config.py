"""The settings of one membrane training run (plain data, saved with every checkpoint)."""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from napari_emseg.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    """Everything :func:`napari_emseg.training.train_membrane` needs, JSON-serialisable.

    Parameters
    ----------
    data : str
        The main source (a dataset folder or ``IMAGE,LABELS[,KIND]``, see
        :func:`napari_emseg.training.data.resolve_source`); its ``train_slices`` are trained on and
        its ``val_slices`` choose the best epoch.
    out : str
        Folder for checkpoints, the metrics log and the exported model.
    extra_data : list of str
        More sources for training only (e.g. the Gerhard stack), each resampled to the main
        source's pixel size; used whole, or only slices ``S`` with ``SOURCE@S``
        (``gala_fibsem_medulla@0-39``).
    extra_fraction : float
        Share of crops drawn from ``extra_data`` (when given).
    extra_val : list of str
        More validation sets as ``SOURCE@SLICES`` (``gala_fibsem_medulla@40-49``), resampled like
        ``extra_data``; they must not overlap the training slices of the same source. With
        them the best epoch is the one with the highest mean V_rand over all validation sets
        (the main ``val_slices`` and these), each logged as ``val_<name>_*``.
    pixel_range_nm : (float, float), optional
        Train one network for every pixel size in this range (nm): each crop is shown at a size
        drawn log-uniformly from it (:class:`~napari_emseg.training.data.CropSampler`), every
        source at its own resolution (no resampling to the main source's size). The exported
        card records the range; inference then runs stacks in it at their own pixel size.
    val_pixel_nm : list of float
        More pixel sizes (nm) at which every validation set is also scored, when coarser than
        its own: its slices are resampled there, predicted and the map brought back (see
        :func:`~napari_emseg.training.validate.validate`). All scores enter the selection mean.
    train_slices, val_slices : str
        Slices of ``data``, as ``"0-17"`` or ``"18,19"``. The ISBI 2012 held-out slices 20-29
        are refused unless ``allow_held_out`` is True.
    model, width, depth : str, float, int
        Architecture (see :data:`napari_emseg.models.ARCHITECTURE_CLASSES`) and its size.
    epochs, steps_per_epoch, batch_size, crop : int
        Schedule and batch shape (crop edge in pixels).
    lr, weight_decay, warmup_steps : float, float, int
        AdamW with a linear warm-up then cosine decay to zero.
    time_budget_min : float, optional
        Wall-clock budget of the whole run (training and validation, summed over resumes).
        The cosine follows whichever of steps and time is further along and training stops when
        the budget is used up, so a run on a shared, busy machine still ends annealed. Such a run
        is not bit-reproducible (where it stops depends on the machine's load).
    pos_weight, dice_weight : float
        Loss settings, see :func:`napari_emseg.training.losses.bce_dice_loss`.
    device : str
        ``auto``, ``cpu`` or ``cuda`` (bf16 autocast on CUDA).
    seed : int
        Seeds numpy and torch; epoch ``e`` draws its crops from ``(seed, e)``, so a resumed run
        sees the same data as an uninterrupted one.
    resume : str, optional
        A checkpoint (``last.pt``) to continue from.
    init_from : str, optional
        A membrane model (registered name or card ``.json``) whose weights start the run
        (fine-tuning); loaded through :func:`napari_emseg.inference.loading.load_network`, so the
        hash is checked. Its architecture, width and depth must match ``model``, ``width`` and
        ``depth``. ``resume`` takes precedence.
    val_tile : int
        Tile edge for validation inference.
    threads : int, optional
        Torch CPU threads of the training process.
    workers : int
        Processes that augment batches (0: the training process itself). A GPU needs several.
    name, description, command : str
        Written into the exported model card (``command``: the exact training command).
    """

    data: str
    out: str
    extra_data: list[str] = field(default_factory=list)
    extra_fraction: float = 0.25
    extra_val: list[str] = field(default_factory=list)
    pixel_range_nm: tuple[float, float] | None = None
    val_pixel_nm: list[float] = field(default_factory=list)
    train_slices: str = "0-17"
    val_slices: str = "18,19"
    allow_held_out: bool = False
    model: str = "fusionnet"
    width: float = 0.125
    depth: int = 4
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 4
    crop: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    time_budget_min: float | None = None
    pos_weight: float = 1.0
    dice_weight: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device: str = "auto"
    seed: int = 0
    resume: str | None = None
    init_from: str | None = None
    val_tile: int = 256
    threads: int | None = None
    workers: int = 0
    name: str | None = None
    description: str = ""
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if values.get("pixel_range_nm") is not None:
            values["pixel_range_nm"] = tuple(values["pixel_range_nm"])
        if isinstance(values.get("augment"), dict):
            values["augment"] = AugmentConfig(**values["augment"])
        return cls(**values)
