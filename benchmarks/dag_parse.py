"""DAG parse time: each reference DAG file vs the same DAG written with stock operators, same run.

    .venv/bin/python benchmarks/dag_parse.py                     # all of dags/, 7 parses per file and side
    .venv/bin/python benchmarks/dag_parse.py --repeats 11 --cold --check
    .venv/bin/python benchmarks/dag_parse.py dags/model_monitor.py --keep

For every reference DAG file, the baseline is a DAG file of the same shape generated from the parsed
reference DAG (so the two cannot drift apart): same dag_id, schedule, params, default_args, task ids,
task groups and dependencies, with each of our operators replaced by the stock operator it builds on:
``MLflowTrainingOperator`` by ``KubernetesPodOperator`` (same image, command, namespace, resources,
our fields as arguments), our branching operators by ``BranchPythonOperator`` and every other one of
ours by ``PythonOperator`` (our templated fields as ``op_kwargs``); our notifiers become a plain
callback. TaskFlow tasks, branches, task groups and stock operators stay what they are. The generated
files go to a temporary directory (``--keep`` keeps them).

Each parse runs in a fresh interpreter that does what the DAG processor does for one file. The
processor freezes its heap (``gc.freeze()``) before its loop; then, for each file, it imports the
Airflow modules the file names (``[dag_processor] parsing_pre_import_modules``; only ``airflow.*``
names, and it keeps them) and forks a child that runs ``_parse_file``: the stability check,
``BundleDagBag`` (which imports the file and collects its DAGs) and the serialization of every DAG.
The interpreter here imports what the forked child inherits (``airflow.dag_processing.manager`` and
``.processor``) and freezes its heap, unclocked, then clocks one of:

- ``parse`` (the target): ``_parse_file`` alone, after the pre-imports for every file of the folder
  (the files given, or all of ``dags/``; the generated files for the baseline) and a full garbage
  collection, as in a processor that has been through the folder once, which is what the scheduler
  pays every parsing interval (``--pre-import file``: after the pre-import for the file alone). The
  collection is the one the processor's own loop runs after its pre-imports. Without it, every parse
  that tipped one more young collection over its threshold would also scan all the pre-imported
  objects (40 ms here). In a real processor few parses do, when the processor's own heap has grown
  enough, whatever the file: ``--processor SECONDS`` runs a real ``airflow dag-processor`` over each
  folder and counts them (150 s each, 2026-11-23: ours 4 of 218 parses, stock 1 of 215);
- ``cold`` (``--cold``): the pre-import for the file itself plus ``_parse_file``, as in a fresh
  processor: no collection in between, so this is the first pass.

Each file's line is followed by how many clocked parses ran a full collection, when any did.

Interpreter start-up and the shared imports are left out of both sides. Byte code is cached under
``results/pycache`` (``PYTHONPYCACHEPREFIX``), as an installed Airflow has its own, and nothing is
written next to the DAG files. Runs alternate ours and the baseline (after one unclocked warm-up each),
so that load from other processes hits both alike. Prints the medians and the ratios ours/baseline per
file; the target is a parse ratio of at most 1.2 for every file (enforced with ``--check``). Also
reports which of mlflow, whylogs, bentoml, sklearn and pandas each of our files imported while being
parsed (pre-import included), with the import chain, and exits 1 if any did. No database is needed;
the run checks that none was created. Writes ``results/dag_parse.json``.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
PYCACHE = RESULTS / "pycache"
DAGS = Path(__file__).resolve().parent.parent / "dags"
FORBIDDEN = ("mlflow", "whylogs", "bentoml", "sklearn", "pandas")
TARGET = 1.2
WORK = Path(tempfile.mkdtemp(prefix="mlops-bench-dag-parse-"))
# Airflow reads its configuration on first import: give it a throwaway home first.
os.environ.setdefault("AIRFLOW_HOME", str(WORK / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["MLOPS_HOME"] = str(WORK / "mlops")
os.environ["WHYLOGS_NO_ANALYTICS"] = "True"
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
# What the DAG processor sets in its parsing child before it imports anything.
os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
# Loading the reference DAGs here must not write byte code next to them either (see child_env).
sys.pycache_prefix = str(PYCACHE)

MARKER = "DAG-PARSE-BENCH "

# argv: DAG file, bundle directory, comma-separated forbidden modules, mode, marker, the other files of
# its DAG folder (os.pathsep-separated). Modes: "parse" clocks _parse_file after pre-importing for every
# file of the folder, "cold" clocks the pre-import for the file itself and _parse_file, "trace" is
# "parse" that also records where each forbidden module was imported from.
CHILD = """
import gc, json, os, sys, time, traceback

dag_file, bundle, forbidden, mode, marker, folder = sys.argv[1:7]
forbidden = set(forbidden.split(","))
chains = {}


class ImportTracer:
    # Records the import stack the first time each forbidden module is looked for.
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in forbidden and top not in chains and top not in sys.modules:
            stack = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<frozen")]
            start = [i for i, f in enumerate(stack) if f.filename == os.path.abspath(dag_file)]
            chains[top] = [f"{f.filename}:{f.lineno}: {f.line}" for f in stack[start[0] if start else 0 :]]
        return None


if mode == "trace":
    sys.meta_path.insert(0, ImportTracer())
import structlog

import airflow.dag_processing.manager
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file, _pre_import_airflow_modules

log = structlog.get_logger(logger_name="task")
# The processor freezes its heap before its parsing loop; without this, a full collection in the
# clocked part would scan all of Airflow's objects, at random on one side or the other.
gc.freeze()
full_collections = []  # ms each, in the clocked part
started = []


def clock_full_collections(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        started.append(time.perf_counter())
    else:
        full_collections.append((time.perf_counter() - started.pop()) * 1000)


gc.callbacks.append(clock_full_collections)
request = DagFileParseRequest(file=dag_file, bundle_path=bundle, bundle_name="bench", callback_requests=[])
before = set(sys.modules)
t0 = time.perf_counter()
_pre_import_airflow_modules(dag_file, log)
t1 = time.perf_counter()
own = set(sys.modules)
if mode != "cold":
    # The processor keeps what it pre-imported for the other files of its folder, and its loop has run
    # a full collection since (the objects are old by then), so a parse does not scan them again.
    for other in filter(None, folder.split(os.pathsep)):
        _pre_import_airflow_modules(other, log)
    gc.collect()
    full_collections.clear()
pre_imported = set(sys.modules)
t2 = time.perf_counter()
result = _parse_file(request, log)
t3 = time.perf_counter()
parsed = set(sys.modules) - pre_imported
loaded = {m.partition(".")[0] for m in (own - before) | parsed}
print(marker + json.dumps({
    "ms": (t3 - t2 + (t1 - t0 if mode == "cold" else 0)) * 1000,
    "modules_imported_by_parse": len(parsed),
    "full_collections_ms": full_collections,
    "dags": len(result.serialized_dags),
    "tasks": sum(len(d.data["dag"]["tasks"]) for d in result.serialized_dags),
    "import_errors": result.import_errors,
    "forbidden": sorted(loaded & forbidden),
    "forbidden_before": sorted({m.partition(".")[0] for m in before} & forbidden),
    "chains": chains,
}))
"""


# ---- the baseline file ----------------------------------------------------------------------------


def _ours(obj: Any) -> bool:
    return type(obj).__module__.startswith("airflow_mlops_provider")


class BaselineWriter:
    """Write one reference file's DAGs again with stock operators, as Python source."""

    def __init__(self) -> None:
        self.imports: set[tuple[str, str]] = {("airflow.sdk", "DAG")}
        self.helpers: set[str] = set()
        self.lines: list[str] = []
        self.names: dict[str, str] = {}

    def name(self, cls: type) -> str:
        """Import ``cls`` from ``airflow.sdk`` when it is exported there, else from its module."""
        import airflow.sdk

        module = "airflow.sdk" if getattr(airflow.sdk, cls.__name__, None) is cls else cls.__module__
        self.imports.add((module, cls.__name__))
        return cls.__name__

    def literal(self, value: Any) -> str:
        """Return source that evaluates to ``value`` (plain data, time spans, assets, timetables)."""
        from airflow.sdk import Asset, AssetAlias, Param
        from airflow.sdk.definitions.asset import AssetAll, AssetAny
        from airflow.sdk.definitions.xcom_arg import PlainXComArg

        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        if isinstance(value, (list, tuple, set, frozenset)):
            items = sorted(value) if isinstance(value, (set, frozenset)) else value
            inner = ", ".join(self.literal(v) for v in items)
            if isinstance(value, tuple):
                return f"({inner},)" if inner else "()"
            return f"[{inner}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.literal(k)}: {self.literal(v)}" for k, v in value.items()) + "}"
        if isinstance(value, datetime.timedelta):
            self.helpers.add("import datetime")
            return repr(value)
        if isinstance(value, datetime.datetime):
            self.helpers.add("import datetime")
            if value.tzinfo is None:
                return repr(value)
            fields = value.astimezone(datetime.timezone.utc).timetuple()[:6]
            return f"datetime.datetime{fields}".replace(")", ", tzinfo=datetime.timezone.utc)")
        if isinstance(value, Param):
            named = {k: v for k, v in value.schema.items() if k.isidentifier()}
            keywords = "".join(f", {k}={self.literal(v)}" for k, v in named.items())
            if len(named) < len(value.schema):
                keywords += f", **{self.literal({k: v for k, v in value.schema.items() if k not in named})}"
            if value.description:
                keywords += f", description={self.literal(value.description)}"
            return f"{self.name(Param)}({self.literal(value.value)}{keywords})"
        if isinstance(value, Asset):
            extra = f", extra={self.literal(value.extra)}" if value.extra else ""
            group = f", group={self.literal(value.group)}" if value.group != "asset" else ""
            return f"{self.name(Asset)}(name={value.name!r}, uri={value.uri!r}{group}{extra})"
        if isinstance(value, AssetAlias):
            return f"{self.name(AssetAlias)}(name={value.name!r}, group={value.group!r})"
        if isinstance(value, (AssetAny, AssetAll)):
            operator = " | " if isinstance(value, AssetAny) else " & "
            return "(" + operator.join(self.literal(v) for v in value.objects) + ")"
        if isinstance(value, PlainXComArg) and value.key == "return_value":
            return f"{self.names[value.operator.task_id]}.output"
        if hasattr(value, "asset_condition") and hasattr(value, "timetable"):  # AssetOrTimeSchedule
            return (
                f"{self.name(type(value))}(timetable={self.literal(value.timetable)}, "
                f"assets={self.literal(value.asset_condition)})"
            )
        if hasattr(value, "_expression") and hasattr(value, "_timezone"):  # a cron timetable
            keywords = f", timezone={value._timezone.name!r}"
            if value._interval:
                keywords += f", interval={self.literal(value._interval)}"
            if value._run_immediately:
                keywords += f", run_immediately={self.literal(value._run_immediately)}"
            return f"{self.name(type(value))}({value._expression!r}{keywords})"
        if callable(value):
            self.helpers.add("_callback")
            return "_callback"
        raise TypeError(f"cannot write {type(value).__name__} {value!r} as source; extend BaselineWriter")

    def emit(self, line: str, depth: int) -> None:
        self.lines.append("    " * depth + line)

    def write_dag(self, dag: Any) -> None:
        args = {
            "dag_id": dag.dag_id,
            "description": dag.description,
            "schedule": dag.schedule,
            "start_date": dag.start_date,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "default_args": dag.default_args,
            "params": dict(dag.params.items()) if dag.params else None,
            "doc_md": dag.doc_md,
        }
        self.emit("", 0)
        self.emit("with DAG(", 0)
        for key, value in args.items():
            if value is not None:
                self.emit(f"{key}={self.literal(value)},", 1)
        self.emit("):", 0)
        self.write_group(dag.task_group, 1)
        for task in dag.tasks:
            upstream = sorted(task.upstream_task_ids)
            if upstream:
                sources = ", ".join(self.names[u] for u in upstream)
                self.emit(f"[{sources}] >> {self.names[task.task_id]}", 1)

    def write_group(self, group: Any, depth: int) -> None:
        from airflow.sdk import TaskGroup

        # Children come in the order they were created, which is an order the original file could use.
        for child in group.children.values():
            if isinstance(child, TaskGroup):
                prefix = "" if child.prefix_group_id else ", prefix_group_id=False"
                self.emit(f"with {self.name(TaskGroup)}(group_id={child.label!r}{prefix}):", depth)
                self.write_group(child, depth + 1)
            else:
                self.write_task(child, depth)

    def write_task(self, task: Any, depth: int) -> None:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.providers.standard.operators.branch import BranchMixIn
        from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
        from airflow.sdk import BaseOperator

        var = f"t{len(self.names)}"
        self.names[task.task_id] = var
        rule = task.trigger_rule
        common = {
            "trigger_rule": None if rule == "all_success" else getattr(rule, "value", rule),
            "outlets": task.outlets or None,
            **{
                name: getattr(task, name) or None
                for name in ("on_failure_callback", "on_success_callback", "on_retry_callback")
            },
        }
        keywords = "".join(f", {k}={self.literal(v)}" for k, v in common.items() if v is not None)
        decorator = getattr(task, "custom_operator_name", "")
        if decorator.startswith("@task"):
            self.imports.add(("airflow.sdk", "task"))
            # The callable's parameters, defaults as None and no annotations: its body never runs here.
            params = [
                p.replace(
                    annotation=inspect.Parameter.empty, default=None if p.default is not p.empty else p.empty
                )
                for p in inspect.signature(task.python_callable).parameters.values()
            ]
            signature = inspect.Signature(params)
            call = [self.literal(a) for a in task.op_args]
            call += [f"{k}={self.literal(v)}" for k, v in task.op_kwargs.items()]
            self.emit(f"@{decorator[1:]}(task_id={task.label!r}{keywords})", depth)
            self.emit(f"def {var}_callable{signature}:", depth)
            self.emit("return None", depth + 1)
            self.emit(f"{var} = {var}_callable({', '.join(call)})", depth)
            return
        label = task.label
        if isinstance(task, KubernetesPodOperator) and _ours(task):
            kpo = {name: getattr(task, name) for name in KubernetesPodOperator.template_fields}
            kpo = {k: v for k, v in kpo.items() if v not in (None, [], {}) and k != "arguments"}
            arguments: list[str] = []
            for name in task.template_fields:
                value = getattr(task, name)
                if name not in KubernetesPodOperator.template_fields and value not in (None, "", {}):
                    arguments += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
            resources = {
                "requests": {
                    "cpu": getattr(task, "cpu_request", None),
                    "memory": getattr(task, "memory_request", None),
                },
                "limits": {
                    "cpu": getattr(task, "cpu_limit", None),
                    "memory": getattr(task, "memory_limit", None),
                },
            }
            if gpus := getattr(task, "gpus", 0):
                resources["limits"][getattr(task, "gpu_resource", "nvidia.com/gpu")] = str(gpus)
            resources = {k: {n: v for n, v in r.items() if v} for k, r in resources.items()}
            if any(resources.values()):
                self.imports.add(("kubernetes.client", "models as k8s"))
                kpo["container_resources"] = resources
            source = "".join(
                f", {k}=k8s.V1ResourceRequirements(**{self.literal(v)})"
                if k == "container_resources"
                else f", {k}={self.literal(v)}"
                for k, v in kpo.items()
            )
            cls = self.name(KubernetesPodOperator)
            self.emit(
                f"{var} = {cls}(task_id={label!r}, arguments={self.literal(arguments)}{source}{keywords})",
                depth,
            )
        elif _ours(task):
            self.helpers.add("_noop")
            op_kwargs = {
                name: getattr(task, name)
                for name in task.template_fields
                if getattr(task, name) is not None and not isinstance(getattr(task, name), BaseOperator)
            }
            cls = self.name(BranchPythonOperator if isinstance(task, BranchMixIn) else PythonOperator)
            self.emit(
                f"{var} = {cls}(task_id={label!r}, python_callable=_noop, op_kwargs={self.literal(op_kwargs)}{keywords})",
                depth,
            )
        else:
            self.emit(f"{var} = {self.name(type(task))}(task_id={label!r}{keywords})", depth)

    def source(self, origin: Path) -> str:
        header = [
            f'"""Stock-operator baseline of {origin.name}, generated by benchmarks/dag_parse.py."""',
            "",
        ]
        header += ["from __future__ import annotations", ""]
        if "import datetime" in self.helpers:
            header.append("import datetime")
        for module in sorted({module for module, _ in self.imports}):
            names = sorted(name for m, name in self.imports if m == module)
            header.append(f"from {module} import {', '.join(names)}")
        if "_callback" in self.helpers:
            header += ["", "", "def _callback(context):", "    return None"]
        if "_noop" in self.helpers:
            header += ["", "", "def _noop(**kwargs):", "    return None"]
        return "\n".join([*header, "", *self.lines, ""])


def write_baseline(origin: Path, dags: list[Any], target: Path) -> None:
    writer = BaselineWriter()
    for dag in sorted(dags, key=lambda d: d.dag_id):
        writer.write_dag(dag)
    target.write_text(writer.source(origin))


def load_dags(path: Path) -> list[Any]:
    from airflow.dag_processing.dagbag import BundleDagBag

    logging.getLogger("airflow.dag_processing").setLevel(logging.WARNING)
    bag = BundleDagBag(dag_folder=str(path), bundle_path=path.parent, safe_mode=False, load_op_links=False)
    if bag.import_errors:
        raise SystemExit(f"{path} does not parse: {bag.import_errors}")
    return list(bag.dags.values())


# ---- measuring ------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of the parsing interpreters: ours, with byte code cached under results/."""
    env = dict(os.environ)
    # Installed Airflow has compiled byte code; a venv installed by uv has none, and recompiling
    # thousands of modules in every interpreter would drown what is measured. The cache lives outside
    # the sources, so nothing is written next to the DAG files or into the venv.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def parse(path: Path, folder: list[Path], mode: str) -> dict[str, Any]:
    """Parse ``path`` in a fresh interpreter as the DAG processor's child does; return its report."""
    others = os.pathsep.join(str(p) for p in folder if p != path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(path.parent), ",".join(FORBIDDEN), mode, MARKER, others],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith(MARKER):
            report: dict[str, Any] = json.loads(line[len(MARKER) :])
            if report["import_errors"] or not report["dags"]:
                raise SystemExit(f"{path} failed to parse: {report['import_errors'] or 'no DAGs'}")
            return report
    raise SystemExit(
        f"parsing {path} failed (exit {out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    )


# Installed as sitecustomize in a real DAG processor (--processor): every process it forks inherits it
# and records its start and each full collection it runs (pid, parent pid, event, ms).
PROBE = """
import gc, os, time

_log, _started = os.environ["DAG_PARSE_BENCH_PROBE"], []


def _write(event, ms=0.0):
    with open(_log, "a") as f:
        f.write(f"{os.getpid()} {os.getppid()} {event} {ms:.1f}\\n")


def _clock(phase, info):
    if info["generation"] == 2:
        if phase == "start":
            _started.append(time.perf_counter())
        elif _started:
            _write("full_collection", (time.perf_counter() - _started.pop()) * 1000)


gc.callbacks.append(_clock)
os.register_at_fork(after_in_child=lambda: _write("forked"))
"""


def run_processor(folder: Path, seconds: int, work: Path) -> dict[str, Any]:
    """Run a real ``airflow dag-processor`` over ``folder``; count the full collections its children ran."""
    work.mkdir(parents=True)
    (work / "probe").mkdir()
    (work / "probe" / "sitecustomize.py").write_text(PROBE)
    log = work / "probe.log"
    env = {
        **child_env(),
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "PYTHONPATH": str(work / "probe"),
        "DAG_PARSE_BENCH_PROBE": str(log),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("_AIRFLOW_PROCESS_CONTEXT", None)
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    log.unlink(missing_ok=True)  # the migration's own collections
    with open(work / "dag-processor.log", "w") as out:
        processor = subprocess.Popen(
            [airflow, "dag-processor"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            processor.wait(timeout=seconds)
            raise SystemExit(f"the dag-processor exited early; see {work / 'dag-processor.log'}")
        except subprocess.TimeoutExpired:
            processor.terminate()
            processor.wait(timeout=60)
    events = [line.split() for line in log.read_text().splitlines()]
    children = [pid for pid, parent, event, _ in events if event == "forked" and parent == str(processor.pid)]
    collected = {
        pid: float(ms) for pid, _, event, ms in events if event == "full_collection" and pid in children
    }
    first_pass = set(children[: len(list(folder.glob("*.py")))])
    return {
        "parses": len(children),
        "with_full_collection": len(collected),
        "of_which_first_pass": len(first_pass & collected.keys()),
        "full_collection_ms": sorted(collected.values()),
    }


def rounds(repeats: int, modes: list[str]) -> Iterator[tuple[str, str]]:
    for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
        for mode in modes:
            yield mode, "ours"
            yield mode, "stock"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "files", nargs="*", type=Path, help="DAG files, together one DAG folder (default: all of dags/)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="clocked parses per file, side and mode")
    parser.add_argument("--cold", action="store_true", help="also clock a fresh processor's first parse")
    parser.add_argument(
        "--pre-import",
        choices=("folder", "file"),
        default="folder",
        help="before a parse, pre-import for every file of the folder (default), or for that file alone",
    )
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a parse ratio exceeds {TARGET}")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and print where")
    parser.add_argument(
        "--processor",
        type=int,
        metavar="SECONDS",
        help="instead, run a real airflow dag-processor over each folder for SECONDS (3 s parse "
        "interval) and count the parses that ran a full garbage collection",
    )
    args = parser.parse_args()
    if args.processor is not None and args.processor < 10:
        parser.error(f"--processor {args.processor}: give at least 10 seconds, enough for a few parses")
    files = [f.resolve() for f in args.files] or sorted(
        p for p in DAGS.glob("*.py") if p.name != "__init__.py"
    )
    if len({f.parent for f in files}) != 1:
        parser.error("give DAG files from one folder")
    modes = ["parse", "cold"] if args.cold else ["parse"]

    stock_dir = WORK / "stock"
    stock_dir.mkdir()
    pairs = {}
    for origin in files:
        write_baseline(origin, load_dags(origin), stock_dir / origin.name)
        pairs[origin.name] = {"ours": origin, "stock": stock_dir / origin.name}
    folders = {side: [p[side] for p in pairs.values()] for side in ("ours", "stock")}
    if args.processor:
        for side, folder in (("ours", files[0].parent), ("stock", stock_dir)):
            probe = run_processor(folder, args.processor, WORK / f"processor-{side}")
            print(
                f"{side:5}: {probe['parses']} parses, {probe['with_full_collection']} ran a full collection "
                f"({probe['of_which_first_pass']} in the first pass), ms each: {probe['full_collection_ms']}"
            )
        shutil.rmtree(WORK, ignore_errors=True)
        return
    if args.pre_import == "file":
        folders = {side: [] for side in folders}
    if not PYCACHE.exists():
        print(f"first run: compiling byte code into {PYCACHE} ...", flush=True)
    print(f"{len(pairs)} DAG files, {args.repeats} parses per file, side and mode; medians in ms\n")
    heading = "".join(f"  {m + (' (target)' if m == 'parse' else ''):^25}" for m in modes)
    columns = "".join(f"  {'ours':>8} {'stock':>8} {'ratio':>7}" for _ in modes)
    print(f"{'':28}{heading}\n{'DAG file':28}{columns}  DAGs tasks  forbidden imports", flush=True)

    summary: dict[str, Any] = {}
    violations = {}
    for name, paths in pairs.items():
        for side in ("ours", "stock"):  # unclocked: writes the byte code, warms the page cache
            parse(paths[side], folders[side], "parse")
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"ours": [], "stock": []} for m in modes}
        for mode, side in rounds(args.repeats, modes):
            runs[mode][side].append(parse(paths[side], folders[side], mode))
        reports = {side: [r for m in modes for r in runs[m][side]] for side in ("ours", "stock")}
        forbidden = sorted({m for r in reports["ours"] for m in r["forbidden"]})
        entry: dict[str, Any] = {
            "dags": reports["ours"][0]["dags"],
            "tasks": reports["ours"][0]["tasks"],
            "stock_tasks": reports["stock"][0]["tasks"],
            "forbidden_imports": forbidden,
            "forbidden_in_stock": sorted({m for r in reports["stock"] for m in r["forbidden"]}),
            "forbidden_before_parse": sorted({m for r in reports["ours"] for m in r["forbidden_before"]}),
        }
        for mode in modes:
            for side in ("ours", "stock"):
                entry[f"{side}_{mode}_ms"] = statistics.median(r["ms"] for r in runs[mode][side])
            entry[f"{mode}_ratio"] = entry[f"ours_{mode}_ms"] / entry[f"stock_{mode}_ms"]
            entry[f"{mode}_full_collections"] = {
                side: sum(1 for r in runs[mode][side] if r["full_collections_ms"])
                for side in ("ours", "stock")
            }
        entry["runs"] = runs
        if forbidden:
            trace = parse(paths["ours"], folders["ours"], "trace")
            entry["import_chains"] = violations[name] = trace["chains"]
        summary[name] = entry
        cells = "".join(
            f"  {entry[f'ours_{m}_ms']:8.1f} {entry[f'stock_{m}_ms']:8.1f} {entry[f'{m}_ratio']:6.2f}x"
            for m in modes
        )
        print(f"{name:28}{cells}  {entry['dags']:4} {entry['tasks']:5}  {', '.join(forbidden) or 'none'}")
        for mode in modes:
            collected = entry[f"{mode}_full_collections"]
            if any(collected.values()):
                print(
                    f"  {mode}: parses that ran a full garbage collection: ours {collected['ours']}, "
                    f"stock {collected['stock']} of {args.repeats}"
                )
        if entry["tasks"] != entry["stock_tasks"]:
            print(f"  the baseline has {entry['stock_tasks']} tasks, ours {entry['tasks']}: a generator bug")
        if entry["forbidden_in_stock"] or entry["forbidden_before_parse"]:
            print(
                f"  imported by the baseline too: {entry['forbidden_in_stock']}; "
                f"by Airflow before parsing: {entry['forbidden_before_parse']}"
            )

    totals = ""
    for mode in modes:
        ours, stock = (sum(e[f"{side}_{mode}_ms"] for e in summary.values()) for side in ("ours", "stock"))
        totals += f"  {ours:8.1f} {stock:8.1f} {ours / stock:6.2f}x"
    print(f"{'all files (sum of medians)':28}{totals}", flush=True)
    worst = max(summary, key=lambda n: summary[n]["parse_ratio"])
    met = all(e["parse_ratio"] <= TARGET for e in summary.values())
    print(
        f"\ntarget: parse ratio <= {TARGET}x for every file: {'met' if met else 'NOT met'} "
        f"(worst: {worst}, {summary[worst]['parse_ratio']:.2f}x)"
    )
    database = list(Path(os.environ["AIRFLOW_HOME"]).glob("*.db"))
    print(f"metadata database created while parsing: {', '.join(map(str, database)) or 'none'}")
    for name, chains in violations.items():
        for module, chain in chains.items():
            print(f"\n{name} imports {module} while parsing:\n  " + "\n  ".join(chain))

    RESULTS.mkdir(exist_ok=True)
    settings = {"repeats": args.repeats, "pre_import": args.pre_import, "target": TARGET, "met": met}
    (RESULTS / "dag_parse.json").write_text(json.dumps({"settings": settings, "files": summary}, indent=2))
    if args.keep:
        print(f"\ngenerated baselines: {stock_dir}")
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    if violations or (args.check and not met):
        sys.exit(1)


if __name__ == "__main__":
    main()
