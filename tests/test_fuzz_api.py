"""Schemathesis over every operation of /openapi.json: no input gives a 500, every
status an operation answers is described for it, and every answer matches what the
schema says for that status (errors included: ``{detail, code}``).

The caller is a demo examiner of the template database with a token of every scope,
so the fuzzer reaches the code behind authorization, not only the 401s. Examples per
operation are few (the suite runs on two shared cores); a finding fails the suite and
is fixed in the code, never by loosening the checks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.authz import SCOPES
from caseforum.config import load_settings
from caseforum.db import open_session
from caseforum.models import User

EXAMPLES_PER_OPERATION = 25


def _settings(folder: Path) -> Any:
    """SQLite in ``folder`` and nothing from the developer's CASEFORUM_* variables (this
    runs at collection and in a module fixture, before the per-test clean environment)."""
    return load_settings(data_dir=folder, secret_key="f" * 32, run_consumers=False,
                         database_url=None, redis_url=None, plugins={})


@pytest.fixture(scope="module")
def fuzz_app(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One app over a copy of the template database for the whole run (writes are fine)."""
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copy(template_db, folder / "caseforum.db")
    shutil.copytree(template_db.parent / "files", folder / "files")
    app = create_app(_settings(folder))
    yield app
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_token(fuzz_app: Any) -> dict[str, str]:
    with open_session(fuzz_app.state.engine) as session:
        user = session.exec(select(User).where(User.username == "jp.examiner")).one()
        _, plain = accounts.create_token(session, user=user, scopes=sorted(SCOPES),
                                         name="fuzzer")
        session.commit()
    return {"Authorization": f"Bearer {plain}"}


def _spec() -> dict[str, Any]:
    """The OpenAPI document, read once at collection from an app over an empty folder
    (the schema does not depend on the data; the requests go to ``fuzz_app``)."""
    folder = Path(tempfile.mkdtemp(prefix="caseforum-openapi-"))
    try:
        app = create_app(_settings(folder))
        spec = app.openapi()
        app.state.engine.dispose()
        return spec
    finally:
        shutil.rmtree(folder, ignore_errors=True)


schema = schemathesis.openapi.from_dict(_spec())
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck), database=None)
def test_api_operation(case: Any, fuzz_app: Any, fuzz_token: dict[str, str]) -> None:
    case.call_and_validate(app=fuzz_app, headers=fuzz_token,
                           checks=[not_a_server_error, response_schema_conformance,
                                   status_code_conformance])
