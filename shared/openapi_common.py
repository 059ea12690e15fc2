"""What every part of the OpenAPI description shares: references, answers, key schemes and the
host's own refusals."""

from __future__ import annotations

from typing import Any

REF_TEMPLATE = "#/components/schemas/{name}"
KEYED: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(name=name)}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    return json_answer(ref("Error"), description)


def not_found(description: str) -> dict[str, Any]:
    """A 404: the app's JSON error, or the host's plain text when no route matches at all."""
    answer = error(description)
    answer["content"]["text/plain"] = {"schema": {"type": "string"}}
    return answer


KEY_REFUSED = {
    "401": {
        "description": (
            "no valid function key, or no valid bearer token (`WWW-Authenticate` says why)"
        ),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}
# What the Functions host (Kestrel) answers for any route before the function runs.
HOST_LIMITS = {
    "414": error("the request target is over 8 KiB"),
    "431": error("the request headers total over 32 KiB"),
}
