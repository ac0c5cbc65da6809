"""The README's getting-started part stays true: its commands exist, its demo table
names every demo user with the office roles and ICE roles the demo really gives, and
its example numbers open demo dossiers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from caseforum_ice_exchange.cli import DEMO_ROLES

from caseforum.offices import REFERENCE_OFFICES
from caseforum.setup_db import DEMO_PASSWORD, DEMO_USERS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ICE_WORDS = {"both": "donor and recipient", "donor": "donor", "recipient": "recipient"}


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()
            if line.split("#")[0].strip()]


def test_every_make_command_in_the_readme_is_a_target_of_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_]+) \?=", makefile, re.MULTILINE))
    lines = _shell_lines()
    assert lines and all(line.startswith("make ") for line in lines), lines
    for line in lines:
        for word in line.split()[1:]:
            if "=" in word:
                assert word.split("=")[0] in variables, line
            else:
                assert word in targets, line
    assert "make reset" in README and "Ctrl+C" in README
    assert "about two minutes" in README


def _demo_table() -> dict[str, list[str]]:
    rows = {}
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0] != "`log-in`":
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_demo_table_matches_the_demo_users_and_their_offices() -> None:
    table = _demo_table()
    assert set(table) == {username for username, *_ in DEMO_USERS}
    roles = {code: (providing, accessing) for code, _, providing, accessing
             in REFERENCE_OFFICES}
    ice = dict(DEMO_ROLES)
    for username, office, _role, _name in DEMO_USERS:
        _, office_cell, roles_cell, ice_cell, _ = table[username]
        assert office_cell.split()[0] == office, username
        providing, accessing = roles[office]
        expected = ", ".join(r for r, on in (("providing", providing),
                                             ("accessing", accessing)) if on)
        assert roles_cell == expected, username
        assert ice_cell == ICE_WORDS.get(ice.get(office, ""), "none"), username
    assert f"`{DEMO_PASSWORD}`" in README


def test_the_example_numbers_open_demo_dossiers(as_user: Any) -> None:
    examples = re.search(r"e\.g\. `([^`]+)` or\s+`([^`]+)`", README)
    assert examples, "the README's number-box examples moved: update this test"
    client, _ = as_user("jp.examiner")
    for number in examples.groups():
        response = client.get("/dossiers", params={"q": number}, follow_redirects=False)
        assert response.status_code == 303, (number, response.status_code)
        assert response.headers["location"].startswith("/dossiers/"), number
