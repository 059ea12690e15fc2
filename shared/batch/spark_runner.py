"""The Spark entry point on Databricks and Synapse: run one encoded gold job's statements.

Deploy this file where the engines point (`DATABRICKS_RUNNER_PATH`, or the Synapse pipeline's
Spark job definition). It takes one argument, the job encoded by `shared.batch.sql.encode_job`,
and is self-contained because the cluster does not have this package.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any


def main(argv: list[str]) -> int:
    """Run every statement in order on the session's Spark; a failure fails the run."""
    from pyspark.sql import SparkSession

    payload: dict[str, Any] = json.loads(base64.b64decode(argv[1], validate=True))
    spark = SparkSession.builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # gold days and hours are UTC
    for statement in payload["statements"]:
        print(f"[{payload['model']}] {statement.splitlines()[0]}", flush=True)
        spark.sql(statement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
