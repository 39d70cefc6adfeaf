"""Search spaces as YAML data, validated on load (no Ray here; `raydream.tune` converts).

Schema::

    description: free text                       # optional
    model: resnet                                # a registered model name
    model_config:                                # fields of that model's config dataclass
      channels: {choice: [32, 64, 96]}
      num_blocks: {randint: [2, 5]}              # integers 2..4 (upper bound exclusive, as Tune)
    train:                                       # fields of raydream.train.config.TrainConfig
      lr: {loguniform: [3.0e-4, 3.0e-3]}
      weight_decay: 1.0e-4                       # a plain value is a constant

Distributions: `choice: [v, ...]`, `uniform: [low, high]`, `loguniform: [low, high]`
(low > 0), `randint: [low, high)`, `quniform: [low, high, q]`. Every key, distribution and
value is checked when the file is loaded; errors name the file and the key.

Conditional keys: a distribution may add `when:`, a mapping of other keys (of the same
section, or dotted as `train.loss`) to the value, or list of values, they must take. The key
is used only when every condition holds; otherwise the trial leaves it at its default (and
the result table shows it blank)::

    train:
      loss: {choice: [cross_entropy, soft_kl]}
      soft_label_sd: {uniform: [0.3, 1.0], when: {loss: soft_kl}}

A condition may test a `choice` or a constant (or an unset key, at its default), but not a
continuous distribution or another conditional key.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from raydream.core.typed import field_names, from_dict
from raydream.core.errors import ConfigError, DataError
from raydream.core.files import require_regular_file
from raydream.models import TREE, list_models, model_config, model_kind
from raydream.models.registry import model_config_class
from raydream.results.record import resolve_config
from raydream.train.config import TREE_TRAIN_FIELDS, TrainConfig, build_model_config

DISTRIBUTIONS = {"choice": None, "uniform": 2, "loguniform": 2, "randint": 2, "quniform": 3}
TOP_LEVEL_KEYS = ("description", "model", "model_config", "train")
SECTIONS = ("model_config", "train")
FAMILIES = "families"  # the top-level key of a space of several families (`FamilySpace`)
FAMILY = "family"  # the key of a trial's config that names its family
RESERVED_FAMILY_NAMES = (FAMILY, "model", "model_config", "train", "repeat_of")
# Keys the command line owns: searching them would make ASHA's budget or the data differ
# between trials.
NOT_SEARCHABLE = ("max_epochs", "train_rows", "val_rows")
MAX_SPACE_BYTES = 1 << 20


@dataclass(frozen=True)
class Distribution:
    """A Tune-style distribution: kind in DISTRIBUTIONS, args as written in the YAML.

    when: ((dotted key, allowed values), ...): the key is used only when all of them hold.
    """

    kind: str
    args: tuple
    when: tuple = ()

    @property
    def encoded(self) -> bool:
        """A choice among lists or mappings: it travels through Tune as JSON strings, because
        model-based searchers (Optuna) take only scalar categories."""
        return self.kind == "choice" and any(isinstance(v, (list, dict)) for v in self.args)

    def candidates(self) -> list[Any]:
        """Values to check against the config: every choice, or both ends of a range."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    model_config / train map each field to a constant or a `Distribution`.
    """

    path: Path
    model: str
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    text: str = ""  # the YAML as loaded: a search records it, and --resume compares against it

    def sampled_keys(self) -> list[str]:
        """Dotted names of the searched (non-constant) keys, e.g. "train.lr"."""
        return [
            f"{section}.{key}"
            for section in SECTIONS
            for key, value in getattr(self, section).items()
            if isinstance(value, Distribution)
        ]

    def default(self, dotted: str) -> Any:
        """The value a key takes when the space does not set it: its config field's default."""
        section, key = dotted.split(".", 1)
        cls = model_config_class(self.model) if section == "model_config" else TrainConfig
        return getattr(cls, key)

    @property
    def parts(self) -> list["SearchSpace"]:
        """The single-family spaces this one is made of: itself."""
        return [self]

    @property
    def has_network(self) -> bool:
        """Whether its trials train PyTorch networks (else tree models)."""
        return model_kind(self.model) != TREE

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        """A config sampled by Tune as a trial uses it: JSON-encoded choices decoded, and
        conditional keys whose condition does not hold removed (left at their defaults)."""
        return resolve_config(config, self.resolution())

    def resolution(self) -> dict[str, Any]:
        """How `resolve` turns a sampled config into a trial's (JSON, kept in the search's
        record for the readers of its results: see `raydream.results.record.resolve_config`)."""
        decode, conditional = [], {}
        for section in SECTIONS:
            for key, value in getattr(self, section).items():
                if isinstance(value, Distribution) and value.encoded:
                    decode.append(f"{section}.{key}")
                if isinstance(value, Distribution) and value.when:
                    conditional[f"{section}.{key}"] = [[dotted, list(allowed), self.default(dotted)]
                                                       for dotted, allowed in value.when]
        return {"sections": list(SECTIONS), "decode": decode, "conditional": conditional}

    def fewest_rounds(self) -> int | None:
        """Tree models: the fewest boosting rounds (or trees) a trial can be given; else None."""
        cls = model_config_class(self.model)
        for key in ("num_boost_round", "n_estimators"):
            if key in field_names(cls):
                return min(_values_of(self.model_config, key, getattr(cls, key)))
        return None


@dataclass(frozen=True)
class FamilySpace:
    """A space of several model families, searched in one ASHA run on one epoch scale::

        description: ResNet against LegNet against LightGBM
        families:
          resnet:                      # a name of your choosing: the table's `family` column
            model: resnet
            model_config: {channels: {choice: [32, 64]}}
            train: {lr: {loguniform: [3.0e-4, 3.0e-3]}}
          lightgbm:
            model: lightgbm
            model_config: {num_leaves: {choice: [15, 63]}}

    Each family is a single-family space (validated as one, its errors naming
    `families.NAME.`), and every trial draws a family (uniformly), then that family's keys. The
    families share train.max_epochs. A random forest cannot be one of them: it is not a Ray
    Train run.
    """

    path: Path
    families: dict[str, SearchSpace]
    description: str = ""
    text: str = ""

    @property
    def model(self) -> str:
        """The families' models, for messages ("resnet | legnet")."""
        return " | ".join(dict.fromkeys(sub.model for sub in self.families.values()))

    @property
    def parts(self) -> list[SearchSpace]:
        return list(self.families.values())

    @property
    def has_network(self) -> bool:
        return any(sub.has_network for sub in self.parts)

    @property
    def train(self) -> dict[str, Any]:
        """The train settings every family has, with one value (max_epochs, seed, ...)."""
        first, *rest = self.parts
        return {k: v for k, v in first.train.items() if all(k in r.train and r.train[k] == v for r in rest)}

    def sampled_keys(self) -> list[str]:
        """FAMILY, then the dotted searched keys of every family (a key shared by several,
        such as train.lr, once)."""
        return [FAMILY, *dict.fromkeys(k for sub in self.parts for k in sub.sampled_keys())]

    def resolve(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trial's config as it trains: its family's model, model_config and train (see
        `SearchSpace.resolve`), beside FAMILY and any other top-level key but the families'."""
        return resolve_config(config, self.resolution())

    def resolution(self) -> dict[str, Any]:
        """How `resolve` turns a sampled config into a trial's (see `SearchSpace.resolution`)."""
        return {"family_key": FAMILY, "families": {name: sub.resolution() for name, sub in self.families.items()}}

    def fewest_rounds(self) -> int | None:
        """The fewest boosting rounds (or trees) a tree family's trial can be given, or None."""
        rounds = [r for r in (sub.fewest_rounds() for sub in self.parts) if r is not None]
        return min(rounds) if rounds else None


def spaces_dirs() -> list[Path]:
    """Where named spaces are looked up: ./search_spaces (the user's own), then the ones
    shipped inside the raydream package (found through importlib.resources, so that every
    kind of install has them)."""
    from importlib import resources

    dirs = [Path.cwd() / "search_spaces", Path(str(resources.files("raydream") / "search_spaces"))]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in unique:
            unique.append(d)
    return unique


def available_spaces() -> list[str]:
    """Names of the spaces found in `spaces_dirs()`."""
    return sorted({p.stem for d in spaces_dirs() for p in d.glob("*.yaml")})


def find_space(name_or_path: str) -> Path:
    """A space's YAML file from a name ("resnet") or a path ("my_space.yaml")."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not candidate.exists():
            raise ConfigError(f"{candidate}: no such search-space file")
        try:
            return require_regular_file(candidate, "search-space file")
        except DataError as err:
            raise ConfigError(str(err)) from None
    for directory in spaces_dirs():
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    raise ConfigError(
        f"no search space named {name_or_path!r}; available: {', '.join(available_spaces()) or 'none'}"
    )


def _parse_distribution(spec: dict, where: str, section: str) -> Distribution:
    spec = dict(spec)
    when = _parse_when(spec.pop("when"), where, section) if "when" in spec else ()
    return replace(_parse_kind(spec, where), when=when)


def _parse_when(when: Any, where: str, section: str) -> tuple:
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{where}.when: expected a mapping of keys to the value (or list of values) they must take, "
                          f"got {when!r}")
    parsed = []
    for key, allowed in when.items():
        dotted = key if str(key).split(".", 1)[0] in SECTIONS and "." in str(key) else f"{section}.{key}"
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        if not values:
            raise ConfigError(f"{where}.when.{key}: expected a value or a non-empty list of values")
        parsed.append((dotted, values))
    return tuple(parsed)


def _parse_kind(spec: dict, where: str) -> Distribution:
    if len(spec) != 1:
        raise ConfigError(f"{where}: a distribution is a mapping with exactly one of {', '.join(DISTRIBUTIONS)}; got {sorted(spec)}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {kind} takes a non-empty list, got {args!r}")
    if kind == "choice":
        return Distribution(kind, tuple(args))
    if len(args) != DISTRIBUTIONS[kind]:
        raise ConfigError(f"{where}: {kind} takes {DISTRIBUTIONS[kind]} numbers, got {len(args)}: {args!r}")
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
        raise ConfigError(f"{where}: {kind} bounds must be finite numbers, got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise ConfigError(f"{where}: {kind} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"{where}: randint bounds must be integers, got {args!r}")
    if kind == "quniform" and args[2] <= 0:
        raise ConfigError(f"{where}: quniform step q must be > 0, got {args[2]}")
    return Distribution(kind, tuple(args))


def _parse_section(values: Any, allowed: list[str], where: str, section: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values or distributions")
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; expected one of: {', '.join(allowed)}")
        parsed[key] = _parse_distribution(value, f"{where}.{key}", section) if isinstance(value, dict) else value
    return parsed


def _check_values(section: dict[str, Any], build, where: str) -> None:
    """Build the typed config for each candidate value of each key, others at constants."""
    constants = {k: v for k, v in section.items() if not isinstance(v, Distribution)}
    build(constants, where)
    for key, value in section.items():
        if isinstance(value, Distribution):
            for candidate in value.candidates():
                try:
                    build({**constants, key: candidate}, f"{where}.{key}")
                except ConfigError as err:
                    raise ConfigError(f"{err} (value {candidate!r} of {value.kind})") from None


def _values_of(section: dict[str, Any], key: str, default: Any) -> list[Any]:
    value = section.get(key, default)
    return value.candidates() if isinstance(value, Distribution) else [value]


def load_space(name_or_path: str) -> "SearchSpace | FamilySpace":
    """Load and validate a search space (see the module docstring for the schema).

    Raises:
        ConfigError: naming the file and key for YAML syntax errors, unknown keys, bad
            distributions and values the model or training config rejects.
    """
    path = find_space(name_or_path)
    raw = path.read_bytes()
    if len(raw) > MAX_SPACE_BYTES:
        raise ConfigError(f"{path}: {len(raw):,} bytes; a search space is a short YAML file (at most "
                          f"{MAX_SPACE_BYTES:,} bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); expected a YAML file") from None
    return parse_space(text, path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: where (1-based line and column) and what."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"YAML syntax error: {problem}"
    context = getattr(err, "context", None)
    kind = "YAML error" if isinstance(err, yaml.constructor.ConstructorError) else "YAML syntax error"
    return (f"{kind} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
            + (f" ({context})" if context else ""))


class _SpaceLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: a key given twice in one mapping is an error (PyYAML
    keeps the last silently), and so are anchors and aliases, whose expansion a sub-kilobyte
    file can blow up to gigabytes. A search space needs neither."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"an alias (*{event.anchor}); anchors and aliases are not allowed in a search space",
                event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"an anchor (&{event.anchor}); anchors and aliases are not allowed in a search space",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice, on lines {seen[key]} and {line}",
                        key_node.start_mark)
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML says so when it builds the mapping
                continue
        return super().construct_mapping(node, deep)


# YAML 1.2 reads 1e-3 and 5E4 as numbers; PyYAML (YAML 1.1) wants a dot in the mantissa and a
# sign in the exponent, and read them as strings.
_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_space(text: str, path: str | os.PathLike) -> "SearchSpace | FamilySpace":
    """Validate a space's YAML text; `path` names it in errors (see `load_space`). A file
    with `families:` is a `FamilySpace`."""
    path = Path(path)
    try:
        raw = yaml.load(text, Loader=_SpaceLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}") from None
    if isinstance(raw, dict) and FAMILIES in raw:
        return _parse_families(raw, path, text)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)} (or description and "
                          f"{FAMILIES})")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}: unknown top-level key {key!r}; expected one of: {', '.join(TOP_LEVEL_KEYS)} "
                              f"(or description and {FAMILIES})")
    return _parse_single(raw, path, text, f"{path}: ")


def _parse_single(raw: dict, path: Path, text: str, prefix: str) -> SearchSpace:
    """One family's space; `prefix` starts every error ("FILE: ", or "FILE: families.NAME.")."""
    model = raw.get("model")
    if model not in list_models():
        raise ConfigError(f"{prefix}model: expected one of {', '.join(list_models())}, got {model!r}")
    model_fields = field_names(model_config_class(model))
    tree = model_kind(model) == TREE
    if tree:
        for key in raw.get("train") or {}:
            if key in field_names(TrainConfig) and key not in TREE_TRAIN_FIELDS:
                raise ConfigError(
                    f"{prefix}train.{key} does not apply to the tree model {model!r}; its settings are in "
                    f"model_config ({', '.join(model_fields)})"
                )
    train_fields = list(TREE_TRAIN_FIELDS) if tree else field_names(TrainConfig)
    model_section = _parse_section(raw.get("model_config"), model_fields, f"{prefix}model_config", "model_config")
    train_section = _parse_section(raw.get("train"), train_fields, f"{prefix}train", "train")
    for key in NOT_SEARCHABLE:
        if isinstance(train_section.get(key), Distribution):
            raise ConfigError(f"{prefix}train.{key} cannot be searched; set it on the command line")
    if "in_channels" in model_section:  # refused by the one check of the model configs' rules
        build_model_config(model, {"in_channels": model_section["in_channels"]}, TrainConfig(), f"{prefix}model_config")
    _check_values(train_section, lambda v, w: from_dict(TrainConfig, v, w), f"{prefix}train")
    _check_values(model_section, lambda v, w: model_config(model, v, w), f"{prefix}model_config")
    for loss in _values_of(train_section, "loss", TrainConfig.loss):
        for flags in _values_of(train_section, "input_flags", TrainConfig.input_flags):
            build_model_config(model, {}, TrainConfig(loss=loss, input_flags=flags), f"{prefix}train.loss")
    space = SearchSpace(
        path=path,
        model=model,
        model_config=model_section,
        train=train_section,
        description=str(raw.get("description", "")),
        text=text,
    )
    _check_conditions(space, prefix)
    return space


def _parse_families(raw: dict, path: Path, text: str) -> FamilySpace:
    """A space of several families (see `FamilySpace`)."""
    for key in raw:
        if key not in ("description", FAMILIES):
            raise ConfigError(f"{path}: unknown top-level key {key!r} beside {FAMILIES}; each family's model, "
                              f"model_config and train go under {FAMILIES}.NAME")
    families = raw[FAMILIES]
    if not isinstance(families, dict) or len(families) < 2:
        raise ConfigError(f"{path}: {FAMILIES}: expected a mapping of two or more names to spaces "
                          f"(model, model_config, train), got {families!r}")
    parsed: dict[str, SearchSpace] = {}
    for name, family in families.items():
        prefix = f"{path}: {FAMILIES}.{name}."
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_FAMILY_NAMES:
            raise ConfigError(f"{path}: {FAMILIES}: {name!r} cannot name a family; use a plain name (letters, digits, "
                              f"_) other than {', '.join(RESERVED_FAMILY_NAMES)}")
        if not isinstance(family, dict):
            raise ConfigError(f"{prefix[:-1]}: expected a mapping with keys model, model_config, train")
        for key in family:
            if key not in TOP_LEVEL_KEYS:
                raise ConfigError(f"{prefix}{key}: unknown key; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
        parsed[name] = _parse_single(family, path, text, prefix)
        if parsed[name].model == "random_forest":
            raise ConfigError(f"{prefix}model: random_forest grows each forest in one process that holds its CPUs, "
                              f"not in a Ray Train run; search it on its own")
    epochs = {name: sub.train.get("max_epochs", TrainConfig.max_epochs) for name, sub in parsed.items()}
    if len(set(epochs.values())) > 1:
        raise ConfigError(f"{path}: the families' train.max_epochs differ ({', '.join(f'{n} {e}' for n, e in epochs.items())}); "
                          f"ASHA compares them on one epoch scale, so give them one (or use --max-epochs)")
    return FamilySpace(path=path, families=parsed, description=str(raw.get("description", "")), text=text)


def _check_conditions(space: SearchSpace, prefix: str) -> None:
    """Each `when` tests a key that exists, is a choice or a constant, is not conditional
    itself, and can take the values it asks for."""
    for section in SECTIONS:
        for key, value in getattr(space, section).items():
            if not isinstance(value, Distribution):
                continue
            for dotted, allowed in value.when:
                where = f"{prefix}{section}.{key}.when.{dotted.split('.', 1)[1]}"
                target_section, target = dotted.split(".", 1)
                fields = field_names(model_config_class(space.model) if target_section == "model_config" else TrainConfig)
                if target not in fields or dotted == f"{section}.{key}":
                    raise ConfigError(f"{where}: no key {dotted!r} to test; expected another key of {target_section}")
                section_values = getattr(space, target_section)
                tested = section_values[target] if target in section_values else space.default(dotted)
                if isinstance(tested, Distribution):
                    if tested.kind != "choice" or tested.when or tested.encoded:
                        what = ("conditional itself" if tested.when else
                                "a choice among lists" if tested.encoded else f"a {tested.kind}")
                        raise ConfigError(f"{where}: a condition can test only a choice of scalars or a constant that "
                                          f"is not conditional itself; {dotted} is {what}")
                    possible = list(tested.args)
                else:
                    possible = [tested]
                never = [v for v in allowed if v not in possible]
                if never:
                    raise ConfigError(f"{where}: {dotted} never takes {never[0]!r}; it takes {possible!r}")
