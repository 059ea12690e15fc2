"""The user function of a blueprint's function, to call with a real `func.HttpRequest`."""

from __future__ import annotations

from typing import Any


def blueprint_function(bp: Any, name: str) -> Any:
    for builder in bp._function_builders:
        function = builder.build()
        if function.get_function_name() == name:
            return function.get_user_function()
    raise LookupError(name)
