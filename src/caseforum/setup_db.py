"""``caseforum init``: schema, reference offices; ``caseforum demo``: demo accounts and
dossiers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import select

from caseforum import schema
from caseforum.db import open_session
from caseforum.models import Office, User
from caseforum.offices import seed_reference_offices, set_public_access
from caseforum.plugin_host import PluginHost

if TYPE_CHECKING:  # the demo's modules are imported by load_demo only (cold start of init)
    from caseforum.doccodes import DocTypeRegistry
    from caseforum.storage_backends import StorageBackend

DEMO_PASSWORD = "caseforum-demo"
DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    # username, office, role, display name
    ("admin", "IB", "platform_admin", "Platform administrator"),
    ("jp.examiner", "JP", "examiner", "Examiner Sato (JPO)"),
    ("cn.examiner", "CN", "examiner", "Examiner Li (CNIPA)"),
    ("kr.examiner", "KR", "examiner", "Examiner Kim (KIPO)"),
    ("au.examiner", "AU", "examiner", "Examiner Walker (IP Australia)"),
    ("gb.examiner", "GB", "examiner", "Examiner Hughes (UKIPO)"),
    ("sg.examiner", "SG", "examiner", "Examiner Tan (IPOS)"),
    ("us.admin", "US", "office_admin", "Dossier administrator (USPTO)"),
    ("jp.admin", "JP", "office_admin", "Office administrator (JPO)"),
)

#: offices whose demo dossiers anonymous visitors may see: WIPO (the IB publishes PCT
#: documents anyway) and the JPO, so a visitor meets one whole family across offices
#: (the JP and PCT members of the sulfide electrolyte family) and a second JP dossier,
#: while the other offices stay closed as every office is until it decides otherwise
DEMO_PUBLIC_OFFICES = ("IB", "JP")


def init_database(engine: Engine, host: PluginHost, *, stamp: Path | None = None,
                  create_if_empty: bool = False) -> int:
    """Create or upgrade the schema and add missing reference offices (``stamp`` and
    ``create_if_empty``: see :func:`caseforum.schema.upgrade`; the commands pass
    ``create_if_empty``, tests/test_schema.py leaves it off to run the migrations)."""
    schema.upgrade(engine, host.migrations(), stamp=stamp, create_if_empty=create_if_empty,
                   load_models=host.models)
    with open_session(engine) as session:
        added = seed_reference_offices(session)
        session.commit()
    return added


def load_demo(
    engine: Engine, *, storage_dir: Path | None = None, doc_types: DocTypeRegistry | None = None,
    store: StorageBackend | None = None,
) -> list[tuple[str, str, str]]:
    """Add the demo accounts that are missing; returns (username, office, role).

    With a ``store`` (or ``storage_dir``, the local store's folder) it also adds the
    missing parts of the demo dossiers, so that a fresh install shows families,
    citations and documents.  ``doc_types`` is the code
    list in force (the built-in one when not given).
    """
    from caseforum import accounts
    from caseforum.demo_dossiers import load_demo_dossiers
    from caseforum.demo_forum import load_demo_forum
    from caseforum.doccodes import DocTypeRegistry
    from caseforum.storage import FileStore

    created = []
    with open_session(engine) as session:
        for username, office, role, name in DEMO_USERS:
            if session.exec(select(User).where(User.username == username)).first():
                continue
            accounts.create_user(session, username=username, office_code=office, role=role,
                                 password=DEMO_PASSWORD, display_name=name)
            created.append((username, office, role))
        for code in DEMO_PUBLIC_OFFICES:
            found = session.get(Office, code)
            # only where nobody has decided yet: a demo re-run keeps an admin's choice
            if found is not None and found.public_access_changed_at is None:
                set_public_access(session, found, on=True, by="demo set-up")
        session.commit()
    if store is None and storage_dir is not None:
        store = FileStore(storage_dir)
    if store is not None:
        load_demo_dossiers(engine, store,
                           doc_types or DocTypeRegistry.with_defaults())
    load_demo_forum(engine)
    return created
