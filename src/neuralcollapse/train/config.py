"""The flat training configuration: defaults, checks, and loading from TOML/JSON.

One dataclass, :class:`TrainConfig`, holds every option with its default. A config file
(TOML or JSON, flat ``key = value`` with the field names; dashes or underscores) and the
command line override the defaults in that order. ``None`` values (e.g. ``per_class``)
are written as ``null`` in JSON and simply left out of a TOML file.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralcollapse.train.names import ARCHITECTURES, DATASET_NAMES

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser is on PyPI as tomli
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

LOSSES = ("ce", "mse")
SCHEDULES = ("papyan", "step", "cosine", "constant")
TRACK_MODES = ("log", "every", "none")
CLASSIFIERS = ("learned", "fixed-etf")


@dataclass
class TrainConfig:
    """Every option of a training run (see docs/training.md for each one's meaning)."""

    # data: a registered set, or the user's own factory (--data MODULE:FACTORY, --num-classes)
    dataset: str = "mnist5k"
    data: str | None = None
    num_classes: int | None = None
    workers: int = 0
    data_dir: str | None = None
    download: bool = False
    per_class: int | None = None
    test_per_class: int | None = None
    # step imbalance (Fang et al. 2021): the last minority_classes classes keep 1/imbalance
    # of their training images; the test split stays balanced
    imbalance: float | None = None
    minority_classes: int | None = None
    # network
    arch: str = "mlp"
    width: int = 256
    depth: int = 3
    batch_norm: bool = True
    bias: bool = True
    # "fixed-etf": the classifier fixed to a simplex ETF (Zhu et al. 2021; Yang et al. 2022)
    classifier: str = "learned"
    base_channels: int | None = None
    stem: str = "auto"
    # width d of the penultimate layer (the classifier's input); None: the architecture's own.
    # With d < K - 1 a simplex ETF cannot exist: the run records the many-class geometry
    feature_dim: int | None = None
    # loss
    loss: str = "ce"
    label_smoothing: float = 0.0
    mse_scale: float = 1.0
    feature_decay: float = 0.0
    # optimisation
    epochs: int = 350
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    classifier_weight_decay: float | None = None
    schedule: str = "papyan"
    step_size: int = 40
    gamma: float = 0.1
    # neural-collapse tracking
    track: str = "log"
    track_points: int = 30
    layers: str = "all"
    eval_batch_size: int = 1024
    # memory (MB) for replaying a split's evaluation features in the measuring engine's later
    # passes; a split whose features need more is read again (0: always read again)
    feature_cache_mb: int = 256
    # DeepFool robustness on this many seeded test images at tracked epochs (0: off)
    robustness: int = 0
    # the Gauss-Newton spectrum on this many seeded training samples at tracked epochs (0: off),
    # over the parameters named (comma-separated names or prefixes)
    track_spectra: int = 0
    spectra_params: str = "classifier"
    # the neural feature ansatz (W^T W against the AGOP) of every linear layer at tracked
    # epochs, on this many seeded training samples, into agop.jsonl (0: off)
    track_agop: int = 0
    # transfer to new classes (Galanti, Gyorgy & Hutter 2022): these classes ("5-9", "1,3,5")
    # are withheld from training; at tracked epochs the penultimate features of up to
    # transfer_per_class seeded samples of each give their CDNV and the k-way m-shot
    # nearest-class-centre error over transfer_episodes episodes (k = transfer_ways, default
    # all of them; m = transfer_shots)
    transfer_classes: str | None = None
    transfer_shots: int = 5
    transfer_ways: int | None = None
    transfer_per_class: int = 200
    transfer_episodes: int = 200
    # run
    out: str | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1
    stop_after_epoch: int | None = None
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool = False

    def run_dir(self) -> Path:
        """``out``, or ``runs/<dataset>-<arch>-<loss>-seed<seed>`` when it is not set (the
        factory's name for ``--data``)."""
        if self.out:
            return Path(self.out)
        data = self.data.rpartition(":")[2] if self.data else self.dataset
        return Path("runs") / f"{data}-{self.arch}-{self.loss}-seed{self.seed}"


# options a resumed run may change: they do not affect the numbers
RESUMABLE_OVERRIDES = frozenset(
    {
        "device",
        "progress",
        "stop_after_epoch",
        "checkpoint_every",
        "eval_batch_size",
        "feature_cache_mb",
        "out",
        "data_dir",
        "download",
        "workers",
        "overwrite",
        "tensorboard",
    }
)


@functools.cache
def field_types() -> dict[str, Any]:
    """Option name -> its type annotation (resolved once: every option check reads it).
    The dict is shared; read it, do not change it."""
    return typing.get_type_hints(TrainConfig)


def _unset_alternative(annotation: Any) -> str:
    """The accepted "no value" of an optional field, for the checker's message."""
    return "or null/None (unset)" if type(None) in typing.get_args(annotation) else ""


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """One value checked against its field's type, as a plain Python value.

    Numbers go through the shared checker: NumPy scalars are accepted (and stored as Python
    ``int`` / ``float``, so ``config.json`` can hold them), ``bool`` is refused where a number
    belongs, ints are accepted for floats, and NaN and infinity are refused: NaN passes every
    bound below (``nan < 0`` is False) and inf trains until the loss is "diverged" (issue 16).
    """
    # imported here: `neuralcollapse train --help` loads this module and must not load NumPy
    from neuralcollapse.checks import check_float, check_int

    allowed = typing.get_args(annotation) or (annotation,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ValueError(f"option {name!r} cannot be null/None")
    if int in allowed:
        return check_int(name, value, alternative=_unset_alternative(annotation))
    if float in allowed:
        return check_float(name, value, alternative=_unset_alternative(annotation))
    for kind in (bool, str):
        if kind in allowed and isinstance(value, kind):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise ValueError(f"option {name!r} must be {names}; got {value!r} ({type(value).__name__})")


def normalise_keys(mapping: dict[str, Any], source: str) -> dict[str, Any]:
    """Map 'per-class' / 'per_class' to field names; unknown keys are an error."""
    types = field_types()
    result = {}
    for key, value in mapping.items():
        name = key.replace("-", "_")
        if name == "version":  # written into config.json by a run; not an option
            continue
        if name not in types:
            close = difflib.get_close_matches(name, list(types), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"{source}: unknown option {key!r}{hint}")
        result[name] = _coerce(name, value, types[name])
    return result


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a flat TOML (``.toml``) or JSON (``.json``) file, keys checked."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--config {path} is a folder; pass the .toml or .json file itself")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"config file must end in .toml or .json; got {path.name}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    if path.suffix == ".toml":
        if tomllib is None:
            raise ValueError(
                f"reading {path.name} needs tomllib (Python >= 3.11) or `pip install tomli`; "
                "or write the options as JSON"
            )
        try:
            mapping = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: invalid TOML ({error})") from error
    else:
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: invalid JSON ({error})") from error
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: expected a table of options")
    nested = [key for key, value in mapping.items() if isinstance(value, dict)]
    if nested:
        raise ValueError(f"{path}: options must be flat key = value pairs; found table(s) {nested}")
    return normalise_keys(mapping, str(path))


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


# counts that must be at least 1 (the optional ones may also be unset)
_COUNTS = (
    "width",
    "depth",
    "epochs",
    "batch_size",
    "step_size",
    "track_points",
    "eval_batch_size",
    "checkpoint_every",
    "per_class",
    "test_per_class",
    "base_channels",
    "stop_after_epoch",
    "feature_dim",
)


def _check_bounds(config: TrainConfig, name: str, **bounds: Any) -> None:
    """An option (already of its field's type) against its bounds; unset passes."""
    from neuralcollapse.checks import check_float, check_int  # lazy: see _coerce

    value = getattr(config, name)
    if value is None:
        return
    alternative = _unset_alternative(field_types()[name])
    check = check_int if isinstance(value, int) else check_float
    check(name, value, alternative=alternative, **bounds)


def _check_fraction(config: TrainConfig, name: str, meaning: str) -> None:
    """An option in [0, 1)."""
    _check_bounds(config, name, minimum=0.0, maximum=1.0, strict=(False, True), meaning=meaning)


def validate(config: TrainConfig) -> TrainConfig:
    """Check every option; raise ValueError naming the option, the value and the fix.

    Returns the config with every number as a plain Python ``int`` / ``float`` (NumPy
    scalars are accepted); the given object is not changed.
    """
    types = field_types()
    config = dataclasses.replace(
        config, **{name: _coerce(name, getattr(config, name), kind) for name, kind in types.items()}
    )

    def choice(name: str, options: tuple[str, ...]) -> None:
        if getattr(config, name) not in options:
            raise ValueError(
                f"{name} must be one of {', '.join(options)}; got {getattr(config, name)!r}"
            )

    if config.data is not None:
        config = _check_factory_options(config)
    else:
        choice("dataset", DATASET_NAMES)
        if config.num_classes is not None:
            raise ValueError(
                "--num-classes goes with --data (a registered data set knows its classes); "
                "drop it, or pass --data MODULE:FACTORY"
            )
    choice("arch", ARCHITECTURES)
    choice("loss", LOSSES)
    choice("classifier", CLASSIFIERS)
    choice("schedule", SCHEDULES)
    choice("track", TRACK_MODES)
    choice("stem", ("auto", "small", "imagenet"))
    for name in _COUNTS:
        _check_bounds(config, name, minimum=1)
    _check_bounds(config, "robustness", minimum=0, meaning="test images attacked; 0 is off")
    _check_bounds(
        config, "track_spectra", minimum=0, meaning="training samples of the spectrum; 0 is off"
    )
    _check_bounds(
        config, "track_agop", minimum=0, meaning="training samples of the AGOP; 0 is off"
    )
    _check_bounds(config, "workers", minimum=0, meaning="DataLoader processes; 0 reads in-process")
    _check_bounds(config, "feature_cache_mb", minimum=0, meaning="MB of replayed features")
    _check_bounds(config, "imbalance", minimum=1.0, meaning="R = n_majority / n_minority")
    _check_bounds(config, "minority_classes", minimum=1)
    # torch's generators take seeds in [0, 2**64) and the run's derived seeds grow from this
    # one (seed * 1_000_003 + epoch shuffles an epoch): the usual 32-bit range keeps them there
    _check_bounds(config, "seed", minimum=0, meaning="random seed")
    _check_bounds(config, "seed", maximum=2**32 - 1, meaning="random seed, below 2**32")
    if config.transfer_classes is not None:
        _check_transfer(config)
    if (config.imbalance is None) != (config.minority_classes is None):
        raise ValueError(
            "step imbalance needs both --imbalance R (>= 1) and --minority-classes K_B "
            f"(got imbalance={config.imbalance}, minority_classes={config.minority_classes})"
        )
    for name in ("lr", "mse_scale", "gamma"):
        _check_bounds(config, name, minimum=0.0, strict=True)
    for name in ("weight_decay", "classifier_weight_decay", "feature_decay"):
        _check_bounds(config, name, minimum=0.0)
    _check_fraction(config, "momentum", "SGD momentum")
    _check_fraction(config, "label_smoothing", "0 is plain cross-entropy")
    if not _DEVICE.match(config.device):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {config.device!r}")
    return config


def parse_classes(text: str, option: str = "--transfer-classes") -> tuple[int, ...]:
    """Class indices written as ranges and lists, e.g. ``"5-9"``, ``"1,3,5"``, ``"0-2,7"``:
    sorted, each once."""
    classes: set[int] = set()
    for part in (piece.strip() for piece in str(text).split(",")):
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(
                f"{option} {text!r}: {part!r} is not a class index or a range; write e.g. "
                "5-9 or 1,3,5"
            ) from None
        if first < 0 or last < first:
            raise ValueError(
                f"{option} {text!r}: {part!r} is not a range of class indices >= 0 (low-high, "
                "low <= high)"
            )
        classes.update(range(first, last + 1))
    return tuple(sorted(classes))


def _check_transfer(config: TrainConfig) -> None:
    """``--transfer-classes`` and its companions (the class range is checked against the
    data when it is loaded)."""
    from neuralcollapse.checks import check_int  # lazy: see _coerce

    withheld = parse_classes(config.transfer_classes)
    if len(withheld) < 2:
        raise ValueError(
            f"--transfer-classes {config.transfer_classes!r} withholds {len(withheld)} class; "
            "the few-shot error and the CDNV compare classes: withhold at least 2"
        )
    if config.imbalance is not None:
        raise ValueError(
            "--transfer-classes and --imbalance do not combine (which classes would be the "
            "minority ones is ambiguous once some are withheld); run them separately"
        )
    check_int("transfer_shots", config.transfer_shots, minimum=1, meaning="support samples m")
    check_int(
        "transfer_per_class",
        config.transfer_per_class,
        minimum=config.transfer_shots + 1,
        meaning="samples of each withheld class: the m shots and at least one query",
    )
    check_int("transfer_episodes", config.transfer_episodes, minimum=2, meaning="random episodes")
    if config.transfer_ways is not None:
        check_int(
            "transfer_ways",
            config.transfer_ways,
            minimum=2,
            maximum=len(withheld),
            meaning=f"classes per episode, at most the {len(withheld)} withheld",
        )


#: a custom data set: what config.json records as its name
CUSTOM_DATASET = "custom"
#: options of the registered data sets that a factory does itself
_REGISTERED_ONLY = ("per_class", "test_per_class", "imbalance", "minority_classes", "data_dir")


def _check_factory_options(config: TrainConfig) -> TrainConfig:
    """``--data``: the factory needs ``--num-classes`` and takes no registered-set option."""
    if config.num_classes is None:
        raise ValueError("--data needs --num-classes K (the labels of your data set lie in [0, K))")
    from neuralcollapse.checks import check_int  # lazy: see _coerce

    check_int("num_classes", config.num_classes, minimum=2, meaning="classes of --data")
    given = [name for name in _REGISTERED_ONLY if getattr(config, name) is not None]
    if config.download:
        given.append("download")
    if given:
        shown = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(
            f"{shown} applies to the registered data sets; with --data, subsample, imbalance "
            "or locate the data inside your factory"
        )
    if config.dataset not in (CUSTOM_DATASET, TrainConfig.dataset):
        raise ValueError(f"--dataset {config.dataset} and --data both name the data; choose one")
    return dataclasses.replace(config, dataset=CUSTOM_DATASET)


def build_config(*overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then each mapping of overrides in turn, validated."""
    merged: dict[str, Any] = {}
    for mapping in overrides:
        merged.update(normalise_keys(mapping, "options"))
    return validate(TrainConfig(**merged))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
