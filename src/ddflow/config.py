"""Config validation and stage ids.

A stage id is a short hash of a canonical JSON of exactly the config that affects that stage's
result plus the upstream stage's id, so output paths change when (and only when) results would.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import itertools
import json
import re
from importlib import resources
from typing import Any

import jsonschema
import yaml

from ddflow.errors import ConfigError  # noqa: F401 (re-exported: callers import it from here)
from ddflow.labels.protocols import PROTOCOLS
from ddflow.methods import KINDS, kind_of
from ddflow.presets import RECOVER_PRESETS

# Bumped when a stage's algorithm changes in a way that changes its results (a new id reruns the
# stage and everything downstream). STAGE_CODE names the modules whose code computes each stage:
# tests/test_stage_code.py fails when one changes until its author either bumps the stage's
# version (results change) or records the new code as result-neutral. Method kinds declare
# their own (ddflow/methods); kinds that share an algorithm share a stage.
ALGO_VERSION = {"data": 1, "teacher": 1, "features": 1, "student": 2, "relabel": 2, "stats": 1,
                "incremental": 1, "pruning": 1}  # fmt: skip
STAGE_CODE = {
    "data": ["data/datasets.py", "data/files.py", "data/pixels.py", "data/hub.py"],
    "teacher": ["train/teacher.py", "train/common.py", "models/convnet.py", "models/resnet.py",
                "models/registry.py", "models/pretrained.py"],
    "features": ["select/ranking.py", "select/coreset.py", "metrics/diversity.py"],
    "student": ["train/student.py", "train/common.py", "train/views.py", "train/dsa.py",
                "labels/soft.py", "labels/protocols.py", "labels/stored.py", "labels/budget.py",
                "models/convnet.py",
                "models/resnet.py", "models/registry.py"],
    "relabel": ["labels/stored.py", "labels/budget.py", "train/views.py", "recover/augment.py"],
    "stats": ["recover/stats.py", "train/common.py"],
}  # fmt: skip
STAGE_CODE["teacher"] += ["models/vgg.py", "models/small.py"]
STAGE_CODE["student"] += ["models/vgg.py", "models/small.py"]
STAGE_CODE["incremental"] = ["applications/incremental.py", *STAGE_CODE["student"]]
STAGE_CODE["pruning"] = ["applications/pruning.py", *STAGE_CODE["student"]]
for _kind in KINDS.values():
    if ALGO_VERSION.setdefault(_kind.stage, _kind.version) != _kind.version:
        raise RuntimeError(f"kinds of stage '{_kind.stage}' disagree on its version")
    STAGE_CODE[_kind.stage] = sorted({*STAGE_CODE.get(_kind.stage, []), *_kind.code})
# Keys of a method that only change how work is split into jobs, never the images.
LAYOUT_KEYS = {"ipc_per_shard"}
# Dataset keys that change how the data is obtained, never its content (checksummed anyway).
DATASET_LAYOUT_KEYS = {"download"}
DEFAULT_BASELINE = "random"


# Schema patterns of names that become folder names (no '/', nothing starting with a dot).
PATH_NAME_PATTERNS = {
    "^[A-Za-z0-9_][A-Za-z0-9_.-]*$": "'_', '.', '-'",
    "^[A-Za-z0-9_][A-Za-z0-9_.:-]*$": "'_', '.', '-', ':'",
}


def load_schema() -> dict:
    text = resources.files("ddflow").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


# The schema's RandAugment grammar (one YAML anchor serves teacher and student), for its message.
RANDAUGMENT_PATTERN = load_schema()["properties"]["student"]["properties"]["randaugment"]["pattern"]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def short_hash(obj: Any, n: int = 10) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:n]


def _fill_defaults(schema: dict, instance: dict) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(sub, instance[key])


def _key_path(prefix: list, error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in [*prefix, *error.absolute_path]) or "<top level>"


def _raise_first(validator: jsonschema.Validator, instance: Any, prefix: list) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    e = errors[0]
    where = _key_path(prefix, e)
    if e.validator == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        raise ConfigError(f"config key '{where}': {e.message}; allowed keys: {allowed}")
    if e.validator == "required":
        raise ConfigError(f"config key '{where}': {e.message}")
    if e.validator == "pattern" and e.validator_value in PATH_NAME_PATTERNS:
        raise ConfigError(
            f"config key '{where}': {e.instance!r} becomes part of an output path: use letters, "
            f"digits and {PATH_NAME_PATTERNS[e.validator_value]} only, not starting with a dot "
            "(no '/', no '..')"
        )
    if e.validator == "pattern" and e.validator_value == RANDAUGMENT_PATTERN:
        raise ConfigError(
            f"config key '{where}': {e.instance!r} is not a timm RandAugment string: 'rand' and "
            "sections among -m<int> (magnitude), -n<int> (ops per image), -mstd<number>, "
            "-mmax<int>, -inc0/-inc1, -p<number>, -t<choice>, e.g. rand-m9-mstd0.5 (timm skips a "
            "section it cannot read, so a typo would silently change the augmentation)"
        )
    if e.validator in ("oneOf", "anyOf") and e.context:
        raise ConfigError(_one_of_message(prefix, e))
    raise ConfigError(f"config key '{where}': {e.message}")


def _one_of_message(prefix: list, e: jsonschema.ValidationError) -> str:
    """Which rule of the closest allowed form the value breaks, and every form allowed."""
    branches = e.validator_value
    defs = e.schema.get("$defs") or _ROOT_DEFS
    # the closest form: one of the value's own type, then its deepest broken rule
    fits = [i for i, b in enumerate(branches) if _json_type(e.instance) in _types(b, defs)]
    close = [c for c in e.context if c.relative_schema_path[0] in fits] or list(e.context)
    c = max(close, key=lambda c: len(c.absolute_path))
    if c.validator == "uniqueItems":
        repeated = sorted({json.dumps(v) for v in c.instance if c.instance.count(v) > 1})
        rule = f"{c.instance!r} repeats {', '.join(repeated)}; each may appear once"
    else:
        rule = c.message
    forms = " or ".join(_form(b, defs) for b in branches)
    return f"config key '{_key_path(prefix, c)}': {rule}. Allowed: {forms}"


_ROOT_DEFS = load_schema()["$defs"]
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object", type(None): "null"}  # fmt: skip


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), "object")


def _types(schema: dict, defs: dict) -> set[str]:
    """The JSON types a form admits (an enum: its values' types; a $ref: its definition's)."""
    if "$ref" in schema:
        return _types(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "enum" in schema:
        return {_json_type(v) for v in schema["enum"]}
    kind = schema.get("type", "object")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    return kinds | ({"integer"} if "number" in kinds else set())


def _form(schema: dict, defs: dict) -> str:
    """A config form in words (for messages): 'an integer >= 1', 'a list of ..., each once'."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        keys = sorted(defs.get(name, {}).get("properties", {}))
        return f"a {name} mapping (keys {', '.join(keys)})" if keys else f"a {name}"
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type")
    if kind == "integer":
        bound = f" >= {schema['minimum']}" if "minimum" in schema else ""
        return f"an integer{bound}"
    if kind == "string":
        return f"a string matching {schema['pattern']}" if "pattern" in schema else "a string"
    if kind == "array":
        items = schema.get("items", {})
        each = ", ".join(map(str, items["enum"])) if "enum" in items else _form(items, defs)
        each = f" of {each}" if items else ""
        return f"a list{each}" + (", each once" if schema.get("uniqueItems") else "")
    if kind == "object":
        [(keys, values)] = (schema.get("patternProperties") or {"": None}).items()
        return f"a mapping of keys matching {keys} to {_form(values, defs)}" if keys else "a map"
    return json.dumps(schema)


def _value_name(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", str(v).replace(".", "p").replace("-", "m"))


def variant_name(sweep: str, variant: dict) -> str:
    """Readable method name of a sweep variant, independent of YAML key order."""
    return f"{sweep}__" + "__".join(f"{k}_{_value_name(variant[k])}" for k in sorted(variant))


def expand_sweeps(cfg: dict) -> dict[str, list[tuple[str, dict]]]:
    """Add every sweep variant to cfg['methods']; return {sweep: [(method name, variant)]}."""
    members = {}
    for sweep, spec in cfg.get("sweeps", {}).items():
        variants = list(spec.get("variants", []))
        grid = spec.get("grid", {})
        if grid:
            keys = sorted(grid)
            variants += [
                dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))
            ]
        if not variants:
            raise ConfigError(f"config key 'sweeps.{sweep}': give a 'grid' or 'variants'")
        members[sweep] = []
        for variant in variants:
            name = variant_name(sweep, variant)
            if name in cfg["methods"]:
                raise ConfigError(
                    f"config key 'sweeps.{sweep}': variant {variant} repeats method '{name}'"
                )
            cfg["methods"][name] = {**copy.deepcopy(spec["base"]), **variant}
            members[sweep].append((name, variant))
    return members


def synthesis_member(name: str, seed: int, own_seed: int) -> str:
    """The method name of one synthesis seed: the method's own seed keeps its name (and its
    results), the others get a suffix."""
    return name if seed == own_seed else f"{name}__seed{seed}"


def expand_synthesis_seeds(cfg: dict) -> dict[str, list[tuple[str, int]]]:
    """Replace every method with `seeds` by one method per seed (independent sets that share
    only the teacher); return {method: [(member name, seed)]}. Runs after validation."""
    members = {}
    for name, method in list(cfg["methods"].items()):
        if "seeds" not in method:
            continue
        base = {k: v for k, v in method.items() if k != "seeds"}
        members[name] = []
        del cfg["methods"][name]
        for seed in method["seeds"]:
            member = synthesis_member(name, seed, method["seed"])
            if member in cfg["methods"]:
                raise ConfigError(
                    f"config key 'methods.{name}.seeds': seed {seed} makes method '{member}', "
                    "which the config already has; rename one"
                )
            cfg["methods"][member] = {**base, "seed": seed}
            members[name].append((member, seed))
    return members


def validate_config(config: dict) -> dict:
    """Return a validated copy of `config` with every default filled in.

    Raises ConfigError naming the offending key (unknown key, wrong type, out of range).
    """
    from ddflow.applications.checks import APPLICATION_CHECKS  # here: it imports this module

    schema = load_schema()
    cfg = copy.deepcopy(config)
    _string_keys(cfg)
    cls = jsonschema.validators.validator_for(schema)
    _raise_first(cls(schema), cfg, [])
    cfg.setdefault("runtime", {})
    _fill_defaults(schema, cfg)
    sweep_members = expand_sweeps(cfg)
    _check_methods(cfg, schema, sweep_members)
    synthesis_members = expand_synthesis_seeds(cfg)
    _add_baseline(cfg, schema, synthesis_members)
    _check_dataset(cfg["dataset"])
    _check_loaded(cfg.get("ranker"), "ranker")
    _check_teacher(cfg["teacher"])
    _check_teachers(cfg, schema)
    _check_loaded(cfg["report"]["set_classifier"], "report.set_classifier")
    _check_student(cfg, schema)
    _check_snapshots(cfg)
    check_models(cfg)
    _check_paper(cfg)
    _check_logger(cfg["runtime"])
    # derived; never part of a stage id
    cfg["sweep_members"] = {
        sweep: [(m, v) for name, v in members for m, _ in synthesis_members.get(name, [(name, 0)])]
        for sweep, members in sweep_members.items()
    }
    cfg["synthesis_members"] = synthesis_members
    for check in APPLICATION_CHECKS:
        check(cfg, schema)
    return cfg


def _string_keys(cfg: dict) -> None:
    """IPC maps in one form: YAML reads {10: 100} with integer keys, --config as strings."""
    paper = (cfg.get("report") or {}).get("paper") or {}
    holders = [(cfg.get("student") or {}, "batch_size"), (paper, "ipc")]
    holders += [(t, "ipc") for t in paper.get("tables", []) if isinstance(t, dict)]
    for holder, key in holders:
        if isinstance(holder.get(key), dict):
            holder[key] = {
                str(k): int(v) if isinstance(v, str) and v.isdigit() else v
                for k, v in holder[key].items()
            }


def _check_methods(cfg: dict, schema: dict, sweep_members: dict) -> None:
    """Each method by its kind's schema block and rules, with its preset's and kind's defaults,
    named where the config writes it (a sweep's variant, or under methods)."""
    if not cfg["methods"]:
        raise ConfigError("config key 'methods': configure at least one method or sweep")
    cls = jsonschema.validators.validator_for(schema)
    for name, method in cfg["methods"].items():
        where = ["methods", name]
        for sweep, members in sweep_members.items():
            if name in dict(members):
                where = ["sweeps", sweep, f"variant {dict(members)[name]}"]
        at = ".".join(map(str, where))
        if method["kind"] not in KINDS:
            raise ConfigError(
                f"config key '{at}.kind': unknown kind '{method['kind']}'; choose from "
                f"{sorted(KINDS)}"
            )
        kind = kind_of(method)
        block = schema["$defs"][kind.schema]
        kind.check_written(at, method, block)
        _raise_first(cls(block), method, where)
        preset = RECOVER_PRESETS.get(method.get("preset"), {})
        if preset.get("kind", method["kind"]) != method["kind"]:
            raise ConfigError(
                f"config key '{at}.preset': preset '{method['preset']}' is for kind "
                f"'{preset['kind']}'"
            )
        for key, value in preset.items():  # a block set in part keeps the preset's other keys
            if isinstance(value, dict) and isinstance(method.get(key), dict):
                method[key] = {**value, **method[key]}
            method.setdefault(key, value)
        for key, value in kind.defaults.items():
            method.setdefault(key, value)
        _fill_defaults(block, method)
        kind.check(at, method)


def _add_baseline(cfg: dict, schema: dict, synthesis_members: dict) -> None:
    """The random subset every table compares against, unless the config has one by its name."""
    if DEFAULT_BASELINE not in cfg["methods"] and DEFAULT_BASELINE not in synthesis_members:
        cfg["methods"][DEFAULT_BASELINE] = {"kind": "random"}
        _fill_defaults(schema["$defs"][KINDS["random"].schema], cfg["methods"][DEFAULT_BASELINE])


def _check_teacher(teacher: dict) -> None:
    """A teacher is loaded or trained (from teacher.init, with one kind of crop), not both."""
    _check_loaded(teacher.get("init"), "teacher.init")
    if teacher.get("init") and teacher_is_loaded(teacher):
        raise ConfigError(
            "config key 'teacher.init': weights to start training from, but the teacher is "
            "loaded (teacher.pretrained or teacher.checkpoint) and not trained; remove one"
        )
    if teacher.get("min_scale") and teacher["crop_padding"]:
        raise ConfigError(
            "config key 'teacher.min_scale': random-resized crops replace the padded crops; "
            "set teacher.crop_padding: 0"
        )


def _check_teachers(cfg: dict, schema: dict) -> None:
    """Named teachers get the teacher block's defaults and rules; a method's teacher list names
    teachers the config has."""
    block = {**schema["properties"]["teacher"], "$defs": schema.get("$defs", {})}
    for name, teacher in cfg["teachers"].items():
        _fill_defaults(block, teacher)
        try:
            _check_teacher(teacher)
        except ConfigError as e:
            raise ConfigError(str(e).replace("'teacher.", f"'teachers.{name}.")) from None
    known = ["teacher", *cfg["teachers"]]
    unknown = [t for t in cfg["student"].get("relabel_teachers") or [] if t not in known]
    if unknown:
        raise ConfigError(
            f"config key 'student.relabel_teachers': {unknown} are not teachers of this config; "
            f"choose from {known}"
        )
    if cfg["student"].get("relabel_teachers") and cfg["student"].get("relabel_model"):
        raise ConfigError(
            "config key 'student.relabel_teachers': the students' labels come from relabel_model "
            "or from relabel_teachers; set one"
        )
    for name, method in cfg["methods"].items():
        unknown = [t for t in method.get("teachers", []) if t not in known]
        if unknown:
            raise ConfigError(
                f"config key 'methods.{name}.teachers': {unknown} are not teachers of this config; "
                f"choose from {known} (add more under teachers: <name>: {{arch: ...}})"
            )


def _check_student(cfg: dict, schema: dict) -> None:
    """The student block, its protocols and label budgets made lists (with defaults), and each
    label protocol's own rules on it."""
    st = cfg["student"]
    _check_loaded(st["relabel_model"], "student.relabel_model")
    if isinstance(st["batch_size"], dict):
        missing = [i for i in cfg["ipc"] if str(i) not in st["batch_size"]]
        if missing:
            raise ConfigError(
                f"config key 'student.batch_size': no batch size for IPC {missing}; give one "
                "per configured IPC, or a single number"
            )
    if st["min_scale"] > st["max_scale"]:
        raise ConfigError("config key 'student.min_scale': larger than student.max_scale")
    if isinstance(st["labels"], str):
        st["labels"] = [st["labels"]]
    if isinstance(st["label_budget"], dict):
        st["label_budget"] = [st["label_budget"]]
    seen: dict[str, int] = {}
    for i, budget in enumerate(st["label_budget"]):
        _fill_defaults(schema["$defs"]["label_budget"], budget)
        name = budget_name(budget)
        if name in seen:
            raise ConfigError(
                f"config key 'student.label_budget.{i}': the same budget as entry {seen[name]} "
                f"({name}; generate changes how labels are made, not what they are); drop one"
            )
        seen[name] = i
    if st.get("tv_randaugment") is not None:  # {} is on, with torchvision's defaults
        _fill_defaults(schema["properties"]["student"]["properties"]["tv_randaugment"] | {
            "type": "object"}, st["tv_randaugment"])  # fmt: skip
    for label in st["labels"]:
        PROTOCOLS[label].check(st)


def _check_snapshots(cfg: dict) -> None:
    """Snapshots are of a recovery's optimisation: only sharded kinds have one."""
    snaps = cfg["report"]["snapshots"]
    for name in snaps["methods"] if snaps else []:
        if name not in cfg["methods"] or not kind_of(cfg["methods"][name]).sharded:
            raise ConfigError(
                f"config key 'report.snapshots.methods': '{name}' is not a "
                f"recovery method; choose from {sorted(cfg['methods'])}"
            )


def _check_logger(runtime: dict) -> None:
    """A missing logger package would otherwise fail in the first job, not here."""
    if runtime["logger"] == "tensorboard" and not importlib.util.find_spec("tensorboard"):
        raise ConfigError(
            "config key 'runtime.logger': tensorboard needs the tensorboard package (pip install "
            "'ddflow[tensorboard]'); or set runtime.logger: csv"
        )


def incremental_recipe(recipe: dict, block: dict) -> dict:
    """A protocol's student recipe for the incremental runs: SRe2L-CL's training recipe over it
    (`recipe: sre2l_cl`, the default) or as it is (`student`), then the block's student keys."""
    from ddflow.presets import SRE2L_CL_STUDENT

    base = SRE2L_CL_STUDENT if block.get("recipe", "sre2l_cl") == "sre2l_cl" else {}
    return {**recipe, **base, **(block.get("student") or {})}


def application_methods(cfg: dict, key: str) -> list[str]:
    """The methods (set names) an application (incremental, pruning) runs on: as configured, or
    all; a method's synthesis-seed sets come with it; always the random subsets."""
    block = cfg.get(key)
    if block is None:
        return []
    chosen = set(block.get("methods") or cfg["methods"])
    for base, members in cfg["synthesis_members"].items():
        if base in chosen:
            chosen |= {m for m, _ in members}
    return [m for m in cfg["methods"] if m in chosen or cfg["methods"][m]["kind"] == "random"]


def check_incremental_steps(inc: dict | None, num_classes: int) -> None:
    """The classes split into equal groups (SRe2L-CL takes num_classes // steps a step)."""
    if inc is not None and num_classes % inc["steps"]:
        raise ConfigError(
            f"config key 'incremental.steps': {num_classes} classes do not split into "
            f"{inc['steps']} equal steps; choose a divisor of {num_classes}"
        )


def cuda_devices() -> int:
    """CUDA devices this process may use, asked of the driver itself (libcuda: cuInit and
    cuDeviceGetCount, what torch.cuda.is_available asks) so the workflow's parse needs no torch;
    honours CUDA_VISIBLE_DEVICES. 0 without a driver."""
    import ctypes

    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_missing() -> str | None:
    """Why `runtime.device: cuda` cannot run on this machine, or None."""
    import platform

    if cuda_devices() > 0:
        return None
    return (
        "config key 'runtime.device': 'cuda' but this machine has no CUDA device "
        f"({platform.node()}); set runtime.device to 'auto' or 'cpu', or run on a GPU node"
    )


def check_models(cfg: dict, resolve_libraries: bool = False) -> None:
    """Every model name is one a builder knows (`ddflow check` also resolves library names)."""
    from ddflow.models.registry import check_model_name

    models = {k: cfg.get(k) for k in ("teacher", "student", "ranker")}
    models["student.relabel_model"] = cfg["student"].get("relabel_model")
    for key, block in models.items():
        if block:
            try:
                check_model_name(block["arch"], resolve_libraries)
            except ValueError as e:
                raise ConfigError(f"config key '{key}.arch': {e}") from None


def paper_table_names(paper: dict | None) -> list[str]:
    """The `<paper>/<table>` names of a report.paper block."""
    return [t if isinstance(t, str) else t["table"] for t in (paper or {}).get("tables", [])]


def paper_stand_ins(paper: dict) -> dict[str, dict]:
    """Per table: the paper's dataset, student and IPC map that ddflow's results stand in for."""
    block = {k: paper[k] for k in ("dataset", "student", "teacher", "ipc") if k in paper}
    return {
        name: {**block, **({} if isinstance(t, str) else t)}
        for name, t in zip(paper_table_names(paper), paper["tables"])
    }


def published_tables() -> set[str]:
    """`<paper>/<table>` of every table in the published numbers (csv: no pandas at parse)."""
    import csv

    text = resources.files("ddflow").joinpath("report/published.csv").read_text("utf-8")
    return {f"{r['paper']}/{r['table']}" for r in csv.DictReader(text.splitlines())}


# Paper tables filled by an application's results (its table), not by the student summary.
APPLICATION_TABLES = {
    "cda/table14": "incremental",
    "cda/table15": "incremental",
    "delt/table6": "pruning",
}


def _check_paper(cfg: dict) -> None:
    paper = cfg["report"].get("paper")
    if not paper:
        return
    known = published_tables()
    for table in paper_table_names(paper):
        if table not in known:
            raise ConfigError(
                f"config key 'report.paper.tables': no published numbers for '{table}'; "
                f"choose from {sorted(known)}"
            )
        application = APPLICATION_TABLES.get(table)
        if application and cfg.get(application) is None:
            raise ConfigError(
                f"config key 'report.paper.tables': {table} is filled by the {application} "
                f"application, which this config does not run; add an `{application}` block"
            )


def _check_loaded(block: dict | None, key: str) -> None:
    """A model to load (ranker, teacher.init, student.relabel_model, pruning.network,
    report.set_classifier) names one source."""
    if block is not None and bool(block.get("pretrained")) == bool(block.get("checkpoint")):
        raise ConfigError(
            f"config key '{key}': set one of {key}.pretrained (torchvision weights) or "
            f"{key}.checkpoint (a weights file)"
        )


def _check_dataset(ds: dict) -> None:
    """Each source's keys and what it needs: a data root, the keys only it reads."""
    if ds["source"] != "mnist-embedded" and not ds["root"]:
        raise ConfigError(
            f"config key 'dataset.root': source '{ds['source']}' needs a data root; "
            "set dataset.root to the folder holding your dataset (see config/README.md)"
        )
    if ds.get("download") and ds["source"] not in ("cifar10", "cifar100"):
        raise ConfigError(
            "config key 'dataset.download': only sources cifar10 and cifar100 download; for "
            f"'{ds['source']}' remove it"
        )
    hf_keys = [k for k in ds if k.startswith("hf_")]
    if hf_keys and ds["source"] != "huggingface":
        raise ConfigError(
            f"config key 'dataset.{hf_keys[0]}': only for source huggingface; remove it"
        )
    if ds.get("image_size") and ds["source"] not in ("imagefolder", "huggingface"):
        raise ConfigError(
            "config key 'dataset.image_size': only for sources imagefolder and huggingface (the "
            "others have one fixed size); remove it"
        )
    if ds.get("storage") == "files" and not (
        ds["source"] == "imagefolder" and ds.get("image_size")
    ):
        raise ConfigError(
            "config key 'dataset.storage': files needs source imagefolder and dataset.image_size "
            "(every stage decodes and resizes the images it reads); use storage array otherwise"
        )
    if ("mean" in ds) != ("std" in ds) or len(ds.get("mean", [])) != len(ds.get("std", [])):
        raise ConfigError(
            "config key 'dataset.mean': give dataset.mean and dataset.std together, one value "
            "per channel each (e.g. ImageNet's [0.485, 0.456, 0.406] and [0.229, 0.224, 0.225])"
        )


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(
                f"{loader.name}, line {key_node.start_mark.line + 1}, column "
                f"{key_node.start_mark.column + 1}: key '{key}' is given twice in one block (first "
                f"on line {seen[key] + 1}); keep one"
            )
        seen[key] = key_node.start_mark.line
    loader.flatten_mapping(node)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_yaml(path: str) -> dict:
    """The one place config files are read: syntax errors and repeated keys name file, line and
    column."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' not found") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise ConfigError(
            f"{path}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML "
            f"({e.problem}); fix the file there"
        ) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, not a {type(data).__name__}")
    return data or {}


def load_config(path: str) -> dict:
    return validate_config(load_yaml(path))


# What decides a loaded teacher's weights; its training recipe keys then change nothing.
LOADED_TEACHER_KEYS = ("arch", "pretrained", "checkpoint", "checkpoint_key", "classes_file")


def teacher_is_loaded(teacher: dict) -> bool:
    return bool(teacher.get("pretrained") or teacher.get("checkpoint"))


# Student keys that fix the views (and so the stored labels): relabel must use the same.
VIEW_KEYS = ("epochs", "batch_size", "min_scale", "max_scale", "hflip", "cutmix")


def batch_size_for(batch_size: int | dict, ipc: int) -> int:
    """One size for every IPC, or the recipe's size at this IPC (scripts scale it with IPC)."""
    return batch_size if isinstance(batch_size, int) else batch_size[str(ipc)]


def budget_name(b: dict) -> str:
    parts = [f"top{b['topk']}"] if b["topk"] else []
    parts += ["int8"] if b["dtype"] == "int8" else []
    if b.get("keep_unit") == "batch":  # LPLD's pool of batches, drawn with replacement
        parts += [f"batches{b['keep']:g}"] + ([] if b["pool_skip_last"] else ["all"])
    else:
        parts += [f"keep{b['keep']:g}"] if b["keep"] < 1 else []
    return "-".join(["stored", *parts])


def budget_slice(b: dict) -> dict:
    """A label budget as ids see it: the batch unit's keys only when set (older ids hold), and
    never `generate`, which changes how the labels are made, not what they are."""
    out = {"topk": b["topk"], "dtype": b["dtype"], "keep": b["keep"]}
    if b.get("keep_unit") == "batch":
        out |= {"keep_unit": "batch", "pool_skip_last": b["pool_skip_last"]}
    return out


def student_protocols(student: dict) -> dict[str, dict]:
    """One student recipe per protocol (and per label budget under stored), by readable name."""
    out = {}
    for label in student["labels"]:
        budgets = student["label_budget"] if label == "stored" else [None]
        for b in budgets:
            name = budget_name(b) if b else label
            recipe = {k: v for k, v in student.items() if k != "label_budget"}
            out[name] = {**recipe, "labels": label, **({"label_budget": b} if b else {})}
    return out


# Student keys added after the first ids: in an id only when set away from these defaults, so
# every id from before they existed holds.
LATER_STUDENT_DEFAULTS = {
    "optimizer": "adamw", "augment": "views", "relabel_model": None, "precision": "fp32",
    "loss": "kl", "ema_decay": None, "micro_batch": None, "tv_randaugment": None,
    "relabel_teachers": None, "relabel_bn": "eval", "eval_from": 0.0,
}  # fmt: skip


def student_result_keys(recipe: dict) -> dict:
    """The keys of one protocol's recipe that change its results (not seeds or job layout)."""
    drop = {"seeds", "relabel_epochs_per_shard"}
    drop |= {k for k, v in LATER_STUDENT_DEFAULTS.items() if recipe.get(k, v) == v}
    if "optimizer" in drop:
        drop |= {"momentum"}  # AdamW has none
    if recipe["labels"] != "stored":
        drop |= {"relabel_seed"}
    if recipe["labels"] != "hybrid":
        drop |= {"hard_weight"}
    if recipe.get("loss", "kl") != "mse_gt":
        drop |= {"ce_weight"}
    if recipe["schedule"] != "linear_to":
        drop |= {"schedule_end"}
    if not recipe.get("relabel_teachers"):
        drop |= {"ensemble"}
    if recipe.get("relabel_bn", "eval") == "eval":
        drop |= {"relabel_chunk"}
    if recipe.get("augment", "views") != "idc":
        drop |= {"cell_factor"}
    out = {k: v for k, v in recipe.items() if k not in drop}
    if "label_budget" in out:
        out["label_budget"] = budget_slice(out["label_budget"])
    return out


def teacher_result_keys(teacher: dict) -> dict:
    if teacher_is_loaded(teacher):
        return {k: v for k, v in teacher.items() if k in LOADED_TEACHER_KEYS}
    return teacher


class StageIds:
    """Stage ids and the exact config slice behind each, for one validated config."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        dataset = {k: v for k, v in cfg["dataset"].items() if k not in DATASET_LAYOUT_KEYS}
        self.data_slice = {"dataset": dataset, "v": ALGO_VERSION["data"]}
        self.data = short_hash(self.data_slice)
        self.teacher_slice = self.slice_of_teacher(cfg["teacher"])
        self.teacher = short_hash(self.teacher_slice)
        # every teacher by name, the main one as `teacher`: equal blocks share their stage
        named = {n: short_hash(self.slice_of_teacher(t)) for n, t in cfg["teachers"].items()}
        self.teachers = {"teacher": self.teacher, **named}
        # the teacher's features and scores over the training set, for the coreset kinds
        self.features = short_hash({"teacher": self.teacher, "v": ALGO_VERSION["features"]})
        self.protocols = student_protocols(cfg["student"])
        self.students = {p: short_hash(self.student_slice(p)) for p in self.protocols}
        ranker = cfg.get("ranker")
        self.ranker = short_hash({"data": self.data, "ranker": ranker}) if ranker else None

    def slice_of_teacher(self, teacher: dict) -> dict:
        return {"data": self.data, "teacher": teacher_result_keys(teacher),
                "v": ALGO_VERSION["teacher"]}  # fmt: skip

    def stats_slice(self, teacher: str, spec: dict) -> dict:
        """A teacher's statistics pass (recover/stats.py): its augmentation, batch, seed, cell
        size and per-class targets; not how it is split into jobs."""
        spec = {k: v for k, v in spec.items() if k != "shards"}
        return {"teacher": self.teachers[teacher], "stats": spec, "v": ALGO_VERSION["stats"]}

    def stats(self, teacher: str, spec: dict) -> str:
        return short_hash(self.stats_slice(teacher, spec))

    def student_slice(self, protocol: str) -> dict:
        return {
            "teacher": self.teacher,
            "student": student_result_keys(self.protocols[protocol]),
            "v": ALGO_VERSION["student"],
            **self.labeler_slice(),
        }

    def application_slice(self, key: str, protocol: str) -> dict:
        """An application's (incremental, pruning) settings over one protocol's student id."""
        settings = {k: v for k, v in self.cfg[key].items() if k != "methods" and v is not None}
        return {"student": self.students[protocol], key: settings, "v": ALGO_VERSION[key]}

    def application(self, key: str, protocol: str) -> str:
        return short_hash(self.application_slice(key, protocol))

    def protocol_of(self, sid: str) -> str:
        """The protocol whose student id is `sid` (a path wildcard)."""
        for p, s in self.students.items():
            if s == sid:
                return p
        raise ValueError(f"student-{sid} is not one of the current config's {self.students}")

    def relabel_slice(self, method: str, ipc: int) -> dict:
        st = self.cfg["student"]
        return {
            "teacher": self.teacher,
            "method": self.method(method),
            "ipc": ipc,
            "views": {k: st[k] for k in VIEW_KEYS},
            "seed": st["relabel_seed"],
            "v": ALGO_VERSION["relabel"],
            **({"relabel_model": st["relabel_model"]} if st["relabel_model"] else {}),
            **self.labeler_slice(),
        }

    def labeler_slice(self) -> dict:
        """The ensemble that labels the students' images, when it is not the teacher, and its
        train-mode chunks (relabel_bn: batch or train)."""
        st = self.cfg["student"]
        names = st.get("relabel_teachers")
        mode = st.get("relabel_bn", "eval")
        chunks = (
            {} if mode == "eval" else {"relabel_bn": mode, "relabel_chunk": st["relabel_chunk"]}
        )
        if not names:
            return chunks
        return {"relabel_teachers": [self.teachers[n] for n in names],
                "ensemble": st["ensemble"], **chunks}  # fmt: skip

    def relabel(self, method: str, ipc: int) -> str:
        return short_hash(self.relabel_slice(method, ipc))

    def budget(self, protocol: str) -> str:
        """The id of a stored protocol's label files (under its relabel's folder)."""
        return short_hash({"budget": budget_slice(self.protocols[protocol]["label_budget"]),
                           "v": ALGO_VERSION["relabel"]})  # fmt: skip

    def ranking_name(self) -> str:
        """The ranking's file stem: a separate ranker's, or the teacher's."""
        return f"ranker-{self.ranker}" if self.ranker else f"teacher-{self.teacher}"

    def method_slice(self, name: str) -> dict:
        m = self.cfg["methods"][name]
        kind = kind_of(m)
        result_keys = {k: v for k, v in m.items() if k not in LAYOUT_KEYS | kind.id_excludes}
        return {**kind.upstream(self, m), "method": result_keys, "v": kind.version}

    def method(self, name: str) -> str:
        return short_hash(self.method_slice(name))

    def as_dict(self) -> dict:
        """Every stage id of the experiment: what `ddflow check` prints and a run records."""
        return {
            "data": self.data,
            "teacher": self.teacher,
            "ranking": self.ranking_name(),
            "methods": {name: self.method(name) for name in self.cfg["methods"]},
            "students": self.students,
        }


def report_dir(cfg: dict) -> str:
    """Where an experiment's tables and figures go: its own folder when named, so several
    experiments share a working directory (and its teacher and shards) without overwriting."""
    ds, name = cfg["dataset"]["name"], cfg["report"]["name"]
    return f"results/{ds}/reports/{name}" if name else f"results/{ds}"


DERIVED_KEYS = ("sweep_members", "synthesis_members")


def base_method(synthesis_members: dict, name: str) -> tuple[str, int | None]:
    """(the configured method a method belongs to, its synthesis seed or None)."""
    for base, members in synthesis_members.items():
        for member, seed in members:
            if member == name:
                return base, seed
    return name, None


def configured_method(methods: dict, synthesis_members: dict, name: str) -> dict:
    """A method as configured: with its synthesis seeds rather than one member's seed."""
    if name not in synthesis_members:
        return methods[name]
    members = synthesis_members[name]
    one = {k: v for k, v in methods[members[0][0]].items() if k != "seed"}
    return {**one, "seeds": [seed for _, seed in members]}


def experiment_record(cfg: dict) -> dict:
    """What a run is: the effective config (validated, presets and sweeps expanded) and the
    stage ids, written beside the report so a table can be traced. Not the config file's name:
    the same experiment from another file reruns nothing."""
    effective = {k: v for k, v in cfg.items() if k not in DERIVED_KEYS}
    members = {b: [[m, s] for m, s in ms] for b, ms in cfg["synthesis_members"].items()}
    return {"stage_ids": StageIds(cfg).as_dict(), "config": effective, "synthesis_seeds": members}
