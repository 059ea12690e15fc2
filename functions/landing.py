"""`land_file`: a file dropped in the landing container, landed in bronze (blobTrigger).

Input: one version of a blob at `landing/<event type>/<file>` (`.csv`, `.json`, `.ndjson`,
`.jsonl` or `.parquet`, sub-folders allowed) on the storage account of the `AzureWebJobsStorage`
connection, as a stream. Valid records land in `bronze/<type>` with PII pseudonymized, rejected
ones in `bronze/deadletter` with the file and line, all exactly once per blob version; a file
in an unknown type folder or of another format is dead-lettered whole. Raising (the lake is
unavailable) leaves the blob to be retried, then poisoned, by the host.
"""

import json
import logging
from typing import IO, cast

import azure.functions as func

from shared.bootstrap import current_platform
from shared.landing.file import landing_file

bp = func.Blueprint()
log = logging.getLogger(__name__)
LANDING_CONNECTION = "AzureWebJobsStorage"


@bp.blob_trigger(arg_name="blob", path="landing/{name}", connection=LANDING_CONNECTION)
def land_file(blob: func.InputStream) -> None:
    # The worker's InputStream is a binary file object; its properties are not in the ABC.
    stream = cast(IO[bytes], blob)
    file = landing_file(blob.name, blob.uri, getattr(blob, "blob_properties", None), stream)
    report = current_platform().events.landing.land(file)
    log.info(json.dumps(report.to_log()))
