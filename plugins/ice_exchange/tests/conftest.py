"""Fixtures for the ICE plugin: the core fixtures, offices with keys, two live instances.

The core fixtures (a copied demo database per test, logged-in clients, live
servers, the browser) are reused from ``tests/``; what is added here is an
instance whose offices take part in ICE, and a pair of instances that know each
other as peers.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from caseforum_ice_exchange import keys
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import Office, User
from caseforum.models.office import IceRole
from tests import browser as _core_browser
from tests import conftest as _core
from tests.conftest import LiveServer

# The core fixtures, made visible to this folder (pytest finds fixtures among a
# conftest module's attributes; it does not look in tests/ from here).
globals().update({name: getattr(_core, name) for name in (
    "clean_environment", "template_db", "data_dir", "settings", "engine", "db", "app",
    "client", "as_user", "steady_identity_cache", "s3_server", "s3_bucket")})
globals().update({name: getattr(_core_browser, name) for name in ("browser", "page")})

@pytest.fixture(autouse=True)
def cheap_key_derivation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its minimum cost in the workflow tests (not in the crypto tests).

    Each test generates fresh office keys, and the production cost (64 MiB, about
    0.1 s) per derivation adds up; what these tests check does not depend on it.
    """
    if not request.module.__name__.rsplit(".", 1)[-1].startswith("test_ice_"):
        return
    import nacl.pwhash
    from caseforum_ice_exchange import crypto

    monkeypatch.setattr(crypto, "_KDF_OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(crypto, "_KDF_MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)


FAST_RETRIES = {"retry_initial_seconds": 0.2, "retry_max_seconds": 0.5, "poll_seconds": 0.2,
                "delivery_timeout_seconds": 20}


def take_part(engine: Any, secret: str, roles: dict[str, str], *, with_keys: bool = True) -> None:
    """Give offices their ICE role and (by default) keys on this instance."""
    with open_session(engine) as session:
        for code, role in roles.items():
            office = session.get(Office, code)
            assert office is not None
            office.ice_role = IceRole(role)
            session.add(office)
            if with_keys and not keys.is_local(session, code):
                keys.generate_keys(session, office_code=code, secret=secret, actor="test")
        session.commit()


def token_for(engine: Any, username: str) -> str:
    with open_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        _, plain = accounts.create_token(session, user=user, scopes=["ice"], expires_days=1,
                                         name="test")
        session.commit()
    return plain


def wait_for(predicate: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


@pytest.fixture
def hosted_settings(data_dir: Path) -> Settings:
    """One instance hosting SG (recipient), JP (donor and recipient) and AU (donor)."""
    settings = load_settings(data_dir=data_dir, secret_key="s" * 32,
                             plugins={"ice_exchange": FAST_RETRIES})
    engine = make_engine(settings)
    take_part(engine, settings.secret_key or "", {"SG": "recipient", "JP": "both",
                                                  "AU": "donor"})
    engine.dispose()
    return settings


@pytest.fixture
def hosted_app(hosted_settings: Settings) -> Any:
    return create_app(hosted_settings)


@dataclass
class Instance:
    """One CaseForum instance of a pair: its app, settings, engine and live server."""

    name: str
    office: str
    settings: Settings
    app: Any
    engine: Any
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, username: str) -> httpx.Client:
        token = token_for(self.engine, username)
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})


def make_instance(root: Path, template_db: Path, *, name: str, office: str, role: str,
                  secret: str, config: dict[str, Any] | None = None,
                  storage: dict[str, Any] | None = None) -> Instance:
    folder = root / name
    folder.mkdir()
    shutil.copy(template_db, folder / "caseforum.db")
    settings = load_settings(data_dir=folder, secret_key=secret,
                             plugins={"ice_exchange": {**FAST_RETRIES, **(config or {})}},
                             **({"storage": storage} if storage else {}))
    engine = make_engine(settings)
    take_part(engine, secret, {office: role})
    app = create_app(settings)
    return Instance(name, office, settings, app, engine, LiveServer(app))


def introduce(a: Instance, b: Instance) -> None:
    """Each instance adds the other's office as a peer, as two administrators would."""
    for here, there in ((a, b), (b, a)):
        with open_session(there.engine) as session:
            record = keys.export_keys(session, office_code=there.office)
        with open_session(here.engine) as session:
            keys.add_peer(session, office_code=there.office, url=there.url, record=record)
            session.commit()


@pytest.fixture
def pair(tmp_path: Path, template_db: Path) -> Iterator[tuple[Instance, Instance]]:
    """SG's instance (recipient) and JP's instance (donor), peers of each other.

    The servers are not started: a test starts them (or leaves one down).
    """
    sg = make_instance(tmp_path, template_db, name="sg", office="SG", role="recipient",
                       secret="sg-instance-secret-" + "x" * 16)
    jp = make_instance(tmp_path, template_db, name="jp", office="JP", role="both",
                       secret="jp-instance-secret-" + "y" * 16)
    introduce(sg, jp)
    yield sg, jp
    close(sg, jp)


def close(*instances: Instance) -> None:
    """Stop the instances' servers (those started) and close their databases."""
    for instance in instances:
        if instance.server.server.started:
            instance.server.stop()
        instance.engine.dispose()
