"""The Spark entry point on Databricks and Synapse: run one encoded gold job's statements, one
batch scoring, or one model training.

Deploy this file where the engines point (`DATABRICKS_RUNNER_PATH`, or the Synapse pipeline's
Spark job definition). It takes one argument and is self-contained because the cluster does
not have this package:

- a gold job, encoded by `shared.batch.sql.encode_job` (base64 JSON): its statements run in
  order;
- `score:<payload URI>` (`shared.batch.engine.ScoringJob`): the JSON payload written by
  `shared.models.remote_scoring` says what to score. It carries the sources of the feature
  code (the app's own modules, standard library and msgspec only), executed here in fresh
  module namespaces, so that each row gets the features training and the stream compute. The
  cluster needs `onnxruntime` and `msgspec` (and pandas, pyarrow and numpy, which Spark's
  runtimes have).
- `train:<payload URI>` (`shared.batch.engine.TrainingJob`): the JSON payload written by
  `shared.models.remote_training` says what to train and names a zip of the app's own code
  (`code_uri`) and the function to call in it (`entry`); the zip goes on `sys.path` and the
  function trains on the driver, exactly as local training does, with the libraries the job
  installed (`shared.models.training_code`). It needs Python 3.11 or later.

A scoring does what `shared.models.batch_scoring` does on DuckDB, at scale: the source's
version is read once per event id, hash-partitioned by entity and sorted within each partition
by entity, event time and event id, so that `mapInPandas` folds one entity's state at a time
over batches of rows (no entity, however busy, is held whole), scores each batch with an
onnxruntime session made once per Python worker, and writes `event_id, event_time, <entity>,
score, decision, threshold, model_name, model_version, source, source_version, run_id,
scored_at` into the output Delta table, replacing the rows of its source (`replaceWhere`).
The commit's `userMetadata` carries the run's figures (rows scored and skipped, alerts).
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from typing import Any

SCORING_PREFIX = "score:"  # as `shared.batch.engine.SCORING_PREFIX`
PAYLOAD_FORMAT = 1  # as `shared.models.scoring_job.PAYLOAD_FORMAT`
TRAINING_PREFIX = "train:"  # as `shared.batch.engine.TRAINING_PREFIX`
TRAINING_FORMAT = 1  # as `shared.models.training_run.PAYLOAD_FORMAT`
TRAINING_PYTHON = (3, 11)  # what the app's code needs
PROBABILITIES, FEATURES_INPUT = "probabilities", "features"  # the ONNX graph's names
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_WORKER_CACHE = "_platform_batch_scoring_cache"
_INTEGRAL = {"tinyint", "smallint", "int", "bigint"}


def main(argv: list[str]) -> int:
    """Run the job the argument names on the session's Spark; a failure fails the run."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # gold days and hours are UTC
    argument = argv[1]
    if argument.startswith(SCORING_PREFIX):
        job = json.loads(read_bytes(spark, argument[len(SCORING_PREFIX) :]))
        print(f"[{job['model']}] scoring {job['source']} v{job['source_version']}", flush=True)
        figures = score(spark, job)
        print(json.dumps({"batch_scoring": figures}), flush=True)
        return 0
    if argument.startswith(TRAINING_PREFIX):
        job = json.loads(read_bytes(spark, argument[len(TRAINING_PREFIX) :]))
        print(f"[{job['model']}] training run {job['run_id']}", flush=True)
        result = train(job, lambda uri: read_bytes(spark, uri))
        summary = {k: result.get(k) for k in ("model", "run_id", "error", "metrics")}
        print(json.dumps({"training": summary}), flush=True)
        return 0
    payload: dict[str, Any] = json.loads(base64.b64decode(argument, validate=True))
    for statement in payload["statements"]:
        print(f"[{payload['model']}] {statement.splitlines()[0]}", flush=True)
        spark.sql(statement)
    return 0


def read_bytes(spark: Any, uri: str) -> bytes:
    """A whole file, through Spark's own file systems (abfss://, dbfs:/, a local path)."""
    rows = spark.read.format("binaryFile").load(uri).select("content").collect()
    if len(rows) != 1:
        raise FileNotFoundError(f"expected one file at {uri}, found {len(rows)}")
    return bytes(rows[0][0])


def train(job: dict[str, Any], read: Callable[[str], bytes]) -> dict[str, Any]:
    """Train what `job` says with the app's code it names: the zip at `code_uri` (read with
    `read`) goes first on `sys.path` for the call, and `entry` (`module:function`) is called
    with the job. Answers the function's result document."""
    if job.get("format") != TRAINING_FORMAT:
        raise ValueError(
            f"a training payload of format {job.get('format')!r}, not {TRAINING_FORMAT}"
        )
    if sys.version_info < TRAINING_PYTHON:
        needed = ".".join(map(str, TRAINING_PYTHON))
        raise RuntimeError(f"the training code needs Python {needed}; this is {sys.version}")
    module_name, _, function = str(job["entry"]).partition(":")
    folder = tempfile.mkdtemp(prefix="platform-training-")
    archive = os.path.join(folder, "code.zip")
    with open(archive, "wb") as file:
        file.write(read(job["code_uri"]))
    sys.path.insert(0, archive)
    try:
        module = importlib.import_module(module_name)
        origin = str(getattr(module, "__file__", ""))
        if not origin.startswith(archive + os.sep):
            raise ImportError(
                f"{module_name} comes from {origin or 'nowhere'}, not the job's code: "
                "the cluster has a package of that name"
            )
        result: dict[str, Any] = getattr(module, function)(job)
    finally:
        sys.path.remove(archive)
    shutil.rmtree(folder, ignore_errors=True)  # kept on a failure: its traceback shows the code
    return result


def score(
    spark: Any, job: dict[str, Any], *, source: Any = None, output_format: str = "delta"
) -> dict[str, Any]:
    """Score `job`'s source (by default its Delta table at `source_version`; or the DataFrame
    given) into its output, as Delta replacing the source's rows (or, for tests without
    Delta, overwritten in `output_format`). Answers the run's figures."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if job.get("format") != PAYLOAD_FORMAT:
        raise ValueError(f"a scoring payload of format {job.get('format')!r}, not {PAYLOAD_FORMAT}")
    if source is None:
        source = (
            spark.read.format("delta")
            .option("versionAsOf", int(job["source_version"]))
            .load(job["source_uri"])
        )
    onnx = read_bytes(spark, job["onnx_uri"])
    kinds = {c: _kind(source.schema[c].dataType.simpleString()) for c in job["columns"]}
    entity = f"_c{job['columns'].index(job['entity'])}"
    rows = (
        _readable(source, job, kinds)
        .repartition(entity)
        .sortWithinPartitions(F.col(entity).asc_nulls_last(), "_t", "_id")
    )
    # Counted, then written: the fold runs once, and its output waits on disk in between.
    scored = rows.mapInPandas(_folder(job, kinds, onnx), _FOLDED).persist(StorageLevel.DISK_ONLY)
    try:
        totals = scored.agg(
            F.count(F.when(F.col("_skipped") == 0, 1)).alias("scored"),
            F.coalesce(F.sum("_skipped"), F.lit(0)).alias("skipped"),
            F.count(F.when(F.col("decision"), 1)).alias("alerts"),
        ).collect()[0]
        figures = {
            "run_id": job["run_id"],
            "model": job["model"],
            "version": int(job["version"]),
            "source": job["source"],
            "source_version": int(job["source_version"]),
            "rows_scored": int(totals["scored"]),
            "rows_skipped": int(totals["skipped"]),
            "alerts": int(totals["alerts"]),
        }
        output = _output(scored.where(F.col("_skipped") == 0), job)
        writer = output.write.format(output_format).mode("overwrite")
        if output_format == "delta":
            writer = writer.option("replaceWhere", f"source = '{job['source']}'").option(
                "userMetadata", json.dumps(figures)
            )
        writer.save(job["output_uri"])
    finally:
        scored.unpersist()
    return figures


# What the fold answers: scored rows (`_skipped` 0), and per batch a row counting the rows it
# could not read.
_FOLDED = (
    "event_id string, t_us bigint, entity string, score double, decision boolean, _skipped bigint"
)


def _kind(spark_type: str) -> str:
    """How a column travels to the fold, exactly past pandas (which makes an integer column
    with NULLs a float one): integers as their text, times as the text of their microseconds
    since the epoch, dates as that of their days."""
    if spark_type in _INTEGRAL:
        return "integer"
    if spark_type in ("timestamp", "timestamp_ntz", "date"):
        return spark_type
    return "value"


def _readable(source: Any, job: dict[str, Any], kinds: dict[str, str]) -> Any:
    """Each event once (rows without an id pass, to be counted as skipped), with the NULLs of
    each row named in `_nulls` (pandas cannot tell a NULL double from NaN)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("event_id").orderBy("event_time")
    once = source.withColumn("_n", F.row_number().over(first)).where(
        F.col("event_id").isNull() | (F.col("_n") == 1)
    )
    named = ["event_id", "event_time", *job["columns"]]
    nulls = F.concat_ws(
        ",", *[F.when(F.col(c).isNull(), F.lit(str(i))) for i, c in enumerate(named)]
    )
    converted = []
    for index, column in enumerate(job["columns"]):
        kind, value = kinds[column], F.col(column)
        if kind in ("timestamp", "timestamp_ntz"):
            value = F.expr(f"unix_micros(cast(`{column}` AS timestamp))")
        elif kind == "date":
            value = F.expr(f"unix_date(`{column}`)")
        if kind != "value":
            value = value.cast("string")
        converted.append(value.alias(f"_c{index}"))
    return once.select(
        F.coalesce(F.col("event_id"), F.lit("")).alias("_id"),
        F.coalesce(F.expr("unix_micros(event_time)"), F.lit(0)).alias("_t"),
        nulls.alias("_nulls"),
        *converted,
    )


def _folder(
    job: dict[str, Any], kinds: dict[str, str], onnx: bytes
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function `mapInPandas` runs over one partition's batches, in order."""
    columns: list[str] = list(job["columns"])
    readers = [_READERS[kinds[c]] for c in columns]
    entity, names = job["entity"], list(job["features"])
    threshold = float(job["threshold"])
    feature_set = job["feature_set"]
    sources: dict[str, str] = dict(feature_set["sources"])

    def fold(batches: Iterator[Any]) -> Iterator[Any]:
        import numpy as np

        folding = _Fold(_feature_set(sources, feature_set["module"], feature_set["entry"]), names)
        session = _session(onnx)
        for batch in batches:
            kept: list[dict[str, Any]] = []
            matrix: list[list[float]] = []
            for row in _rows(batch, columns, readers):
                vector = folding.vector(row, row[entity])
                if vector is not None:
                    kept.append(row)
                    matrix.append(vector)
            scores = _probabilities(
                session, np.asarray(matrix, dtype=np.float32).reshape(-1, len(names))
            )
            yield _folded(kept, entity, scores, threshold, len(batch) - len(kept))

    return fold


class _Fold:
    """One partition's fold, as `shared.models.batch_scoring` folds on DuckDB: a new state at
    each entity (rows come sorted by entity, time and id), the row's features from the state
    its earlier events left, then the row folded in; None for a row that cannot be read."""

    def __init__(self, features: Any, names: list[str]) -> None:
        self.features, self.names = features, names
        self.entity: Any = None
        self.state: Any = None

    def vector(self, row: dict[str, Any], entity: Any) -> list[float] | None:
        if entity is None or row["event_id"] is None or row["t_us"] is None:
            return None
        if entity != self.entity:
            self.entity, self.state = entity, self.features.new_state()
        row["t"] = row["t_us"] / 1_000_000
        try:
            found = self.features.features(self.state, row)
            self.features.apply(self.state, row)
            return [float(found[name]) for name in self.names]
        except (TypeError, ValueError, KeyError):
            return None


def _rows(
    batch: Any, columns: list[str], readers: list[Callable[[Any], Any]]
) -> Iterator[dict[str, Any]]:
    """A batch's rows as the DuckDB path reads them: the contract's values (None for NULL),
    `event_id`, `event_time` and `t_us`, its microseconds since the epoch."""
    named = ["event_id", "event_time", *columns]
    ids, times, nulls = (batch[c].tolist() for c in ("_id", "_t", "_nulls"))
    values = [[read(v) for v in batch[f"_c{i}"].tolist()] for i, read in enumerate(readers)]
    for r, t_us in enumerate(times):
        row: dict[str, Any] = {c: values[i][r] for i, c in enumerate(columns)}
        row["event_id"], row["t_us"] = ids[r], t_us
        row["event_time"] = _EPOCH + dt.timedelta(microseconds=t_us)
        for index in nulls[r].split(",") if nulls[r] else ():
            row[named[int(index)]] = None
            if index == "1":  # no event time
                row["t_us"] = None
        yield row


def _folded(
    rows: list[dict[str, Any]], entity: str, scores: Any, threshold: float, skipped: int
) -> Any:
    """The scored rows, and a row counting the `skipped` ones (if any)."""
    import numpy as np
    import pandas as pd

    marker = 1 if skipped else 0
    return pd.DataFrame(
        {
            "event_id": pd.Series(
                [row["event_id"] for row in rows] + [None] * marker, dtype=object
            ),
            "t_us": pd.Series([row["t_us"] for row in rows] + [0] * marker, dtype="int64"),
            "entity": pd.Series([str(row[entity]) for row in rows] + [None] * marker, dtype=object),
            "score": np.concatenate([scores.astype(np.float64), np.zeros(marker)]),
            "decision": np.concatenate([scores >= threshold, np.zeros(marker, dtype=bool)]),
            "_skipped": pd.Series([0] * len(rows) + [skipped] * marker, dtype="int64"),
        }
    )


def _integer(text: Any) -> int | None:
    return int(text) if isinstance(text, str) else None


def _timestamp(text: Any) -> dt.datetime | None:
    micros = _integer(text)
    return None if micros is None else _EPOCH + dt.timedelta(microseconds=micros)


def _timestamp_ntz(text: Any) -> dt.datetime | None:
    moment = _timestamp(text)
    return None if moment is None else moment.replace(tzinfo=None)


def _date(text: Any) -> dt.date | None:
    days = _integer(text)
    return None if days is None else _EPOCH_DATE + dt.timedelta(days=days)


_READERS: dict[str, Callable[[Any], Any]] = {
    "value": lambda value: value,
    "integer": _integer,
    "timestamp": _timestamp,
    "timestamp_ntz": _timestamp_ntz,
    "date": _date,
}


def _output(scored: Any, job: dict[str, Any]) -> Any:
    """The output's columns, as `shared.models.batch_scoring.output_schema` has them."""
    from pyspark.sql import functions as F

    return scored.select(
        F.col("event_id"),
        F.expr("timestamp_micros(t_us)").alias("event_time"),
        F.col("entity").alias(job["entity"]),
        F.col("score"),
        F.col("decision"),
        F.lit(float(job["threshold"])).cast("double").alias("threshold"),
        F.lit(job["model"]).cast("string").alias("model_name"),
        F.lit(int(job["version"])).cast("int").alias("model_version"),
        F.lit(job["source"]).cast("string").alias("source"),
        F.lit(int(job["source_version"])).cast("bigint").alias("source_version"),
        F.lit(job["run_id"]).cast("string").alias("run_id"),
        F.expr(f"timestamp_micros({int(job['scored_at_us'])})").alias("scored_at"),
    )


def _worker_cache() -> dict[str, Any]:
    """What a Python worker keeps across tasks (Spark reuses its workers): a module of its own
    in `sys.modules`, since the function Spark ships is unpickled anew for every task."""
    cache = sys.modules.get(_WORKER_CACHE)
    if cache is None:
        cache = sys.modules[_WORKER_CACHE] = types.ModuleType(_WORKER_CACHE)
    entries: dict[str, Any] = cache.__dict__.setdefault("entries", {})
    return entries


def _session(onnx: bytes) -> Any:
    """The model's onnxruntime session, made once per worker: one thread per call, as
    serving's (Spark runs a worker per core)."""
    key = "onnx:" + hashlib.sha256(onnx).hexdigest()
    cache = _worker_cache()
    if key not in cache:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        cache[key] = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    return cache[key]


def _probabilities(session: Any, matrix: Any) -> Any:
    """The positive class's probability for each row (none for no rows)."""
    import numpy as np

    if len(matrix) == 0:
        return np.zeros(0, dtype=np.float32)
    return session.run([PROBABILITIES], {FEATURES_INPUT: matrix})[0][:, 1]


def _feature_set(sources: dict[str, str], module: str, entry: str) -> Any:
    """An instance of the feature set `entry` of `module`, made once per worker."""
    key = "features:" + hashlib.sha256(json.dumps([sources, module, entry]).encode()).hexdigest()
    cache = _worker_cache()
    if key not in cache:
        cache[key] = getattr(load_modules(sources)[module], entry)()
    return cache[key]


def load_modules(sources: dict[str, str]) -> dict[str, types.ModuleType]:
    """Each source executed, in the order given (dependencies first), in a fresh module of its
    name. `from <one of them> import ...` finds the module executed before; every other
    import is the interpreter's. Nothing enters `sys.modules`."""
    modules: dict[str, types.ModuleType] = {}

    def importer(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level == 0 and fromlist and name in modules:
            return modules[name]
        return builtins.__import__(name, globals, locals, fromlist, level)

    scope = {**vars(builtins), "__import__": importer}
    for name, source in sources.items():
        module = types.ModuleType(name)
        module.__dict__["__builtins__"] = scope
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
        modules[name] = module
    return modules


if __name__ == "__main__":
    sys.exit(main(sys.argv))
