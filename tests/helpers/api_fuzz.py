"""Generated requests from the API's own OpenAPI schema (schemathesis), shared by the in-process
run (tests/backend/api/test_api_schemathesis.py) and the run through Nginx and TLS on a deployed
lab host (tests/deploy/e2e.py): the same modes, NUL hook and Hypothesis settings. On sys.path
through pytest's `pythonpath`.

Modes: "positive" and "negative" are schemathesis' own; "nul" sends valid requests with a NUL
byte in every string (query, path, body), which PostgreSQL text cannot hold and the generators
produce only now and then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema

MODES = ("positive", "negative", "nul")


def with_nul(value: Any) -> Any:
    """`value` with a NUL byte in every string (PostgreSQL text cannot hold one)."""
    if isinstance(value, str):
        return f"{value[:1]}\x00{value[1:]}"
    if isinstance(value, dict):
        return {key: with_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_nul(item) for item in value]
    return value


def nul_in_every_string(case: schemathesis.Case) -> schemathesis.Case:
    case.query = with_nul(case.query)
    case.path_parameters = with_nul(case.path_parameters)
    case.body = with_nul(case.body)
    return case


def operations(schema: BaseSchema) -> list[APIOperation]:
    """Every operation of the schema, logout last (it revokes the token the others use)."""
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda operation: operation.path.endswith("/auth/logout"))


def run_cases(
    operation: APIOperation,
    mode: str,
    max_examples: int,
    act: Callable[[schemathesis.Case], object],
    *,
    shrink: bool = True,
) -> str | None:
    """ACT on up to MAX_EXAMPLES cases of OPERATION in MODE; the failure it raised, if any, as
    "<operation>: <error>" (None when it raised none, or when MODE has nothing to generate: an
    operation without inputs cannot be made invalid)."""
    if mode == "nul":
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        strategy = strategy.map(nul_in_every_string)
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]

    @given(case=strategy)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        # The failure's own text (schemathesis: the check and a curl to reproduce it) is what
        # is reported; quiet spares a "reproduce with @seed" line per operation that cannot
        # be made invalid.
        verbosity=Verbosity.quiet,
    )
    def check(case: schemathesis.Case) -> None:
        act(case)

    try:
        check()
    except Unsatisfiable:
        return None
    except Exception as exc:  # every operation's failure is collected, not just the first
        return f"{operation.label}: {str(exc)[:2000]}"
    return None
