"""Tests for caseforum.doccodes: the document code list and ST.14 categories."""

import json
import re
from pathlib import Path

import pytest

from caseforum.doccodes import (
    BUILTIN_DOC_TYPES,
    DEFAULT_DOC_TYPES,
    DIRECTIONS,
    DOC_GROUPS,
    ST14_CATEGORIES,
    DocType,
    DocTypeRegistry,
    DuplicateDocType,
    UnknownDocType,
    describe,
    normalise_code,
    split_categories,
    validate_category,
)


@pytest.mark.parametrize(
    ("code", "group"),
    [
        ("ISR", "search"),
        ("WOSA", "search"),
        ("WOISA", "search"),
        ("SRPT", "search"),
        ("SRNT", "search"),
        ("892", "search"),
        ("IPRP", "examination"),
        ("IPER", "examination"),
        ("EXRP", "examination"),
        ("CTNF", "examination"),
        ("CTFR", "examination"),
        ("NOA", "grant"),
        ("CLM", "application"),
        ("SPEC", "application"),
        ("ABST", "application"),
        ("DRW", "application"),
        ("AMND", "applicant"),
        ("REM", "applicant"),
        ("IDS", "applicant"),
        ("PPH", "applicant"),
        ("OTHER", "other"),
    ],
)
def test_default_code_list_files_each_type_in_its_group(code: str, group: str) -> None:
    assert DocTypeRegistry.with_defaults().get(code).group == group


def test_default_labels_read_as_english() -> None:
    registry = DocTypeRegistry.with_defaults()
    assert registry.label("CTNF") == "Non-final office action"
    assert registry.label("CTFR") == "Final office action"
    assert registry.label("NOA") == "Notice of allowance"
    assert registry.label("REM") == "Applicant's arguments"
    assert registry.label("SRPT") == "Search report"


def test_default_codes_are_unique_and_labelled() -> None:
    codes = [t.code for t in DEFAULT_DOC_TYPES]
    assert len(codes) == len(set(codes))
    assert all(t.label.strip() for t in DEFAULT_DOC_TYPES)


def test_lookup_ignores_case_and_spaces() -> None:
    registry = DocTypeRegistry.with_defaults()
    assert registry.get(" ctnf ") == registry.get("CTNF")
    assert "isr" in registry
    assert "NOPE" not in registry


def test_new_registry_is_empty_so_the_plugin_hook_can_fill_it() -> None:
    registry = DocTypeRegistry()
    assert registry.all() == []
    registry.register_many(DEFAULT_DOC_TYPES)
    assert len(registry) == len(DEFAULT_DOC_TYPES)


def test_all_keeps_registration_order() -> None:
    registry = DocTypeRegistry.with_defaults()
    extra = DocType("OPD-NOTE", "One Portal Dossier note", "other")
    registry.register(extra)
    assert registry.all() == [*BUILTIN_DOC_TYPES, extra]
    assert registry.codes()[-1] == "OPD-NOTE"


def test_plugin_type_can_be_registered_and_looked_up() -> None:
    registry = DocTypeRegistry.with_defaults()
    registry.register(DocType("JPDEC", "Decision of refusal (JP)", "examination"))
    assert registry.label("jpdec") == "Decision of refusal (JP)"
    assert registry.get("JPDEC") in registry.in_group("examination")


def test_registries_do_not_share_plugin_types() -> None:
    first = DocTypeRegistry.with_defaults()
    first.register(DocType("XTRA", "Extra", "other"))
    assert "XTRA" not in DocTypeRegistry.with_defaults()


def test_duplicate_code_is_refused_and_the_first_meaning_kept() -> None:
    registry = DocTypeRegistry.with_defaults()
    with pytest.raises(DuplicateDocType) as caught:
        registry.register(DocType("CTNF", "Something else", "other"))
    message = str(caught.value)
    assert "'CTNF' is already registered" in message
    assert "Non-final office action" in message
    assert "choose another code" in message
    assert registry.label("CTNF") == "Non-final office action"


def test_duplicate_is_refused_even_when_identical() -> None:
    registry = DocTypeRegistry.with_defaults()
    with pytest.raises(DuplicateDocType):
        registry.register(DocType("ISR", "International search report", "search"))


def test_duplicate_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        DocTypeRegistry([DocType("A1", "x", "other"), DocType("A1", "y", "other")])


def test_only_doc_types_can_be_registered() -> None:
    with pytest.raises(TypeError, match="expected a DocType"):
        DocTypeRegistry().register(("CODE", "label", "other"))  # type: ignore[arg-type]


def test_unknown_code_explains_where_valid_codes_are() -> None:
    registry = DocTypeRegistry.with_defaults()
    with pytest.raises(UnknownDocType) as caught:
        registry.get("XYZ")
    message = str(caught.value)
    assert message.startswith("unknown document type code 'XYZ'")
    assert "DocTypeRegistry.all()" in message
    assert "CTNF" in message and "892" in message


def test_unknown_code_suggests_a_near_miss() -> None:
    with pytest.raises(UnknownDocType, match=re.escape("did you mean CTNF")):
        DocTypeRegistry.with_defaults().get("CTFN")


def test_unknown_code_is_a_lookup_error_for_label_too() -> None:
    with pytest.raises(LookupError):
        DocTypeRegistry.with_defaults().label("nope")


def test_unknown_code_in_an_empty_registry() -> None:
    with pytest.raises(UnknownDocType, match="none yet"):
        DocTypeRegistry().get("ISR")


@pytest.mark.parametrize(
    ("code", "label", "group", "message"),
    [
        ("ctnf", "Lower case", "other", "in upper case"),
        ("", "Empty", "other", "1 to 20 characters"),
        ("WAY-TOO-LONG-CODE-X-Y", "Long", "other", "1 to 20 characters"),
        ("A_B", "Underscore", "other", "A-Z, 0-9, '.' or '-'"),
        ("NEW", "New", "other", "direction 'sideways'"),
        ("NEW", "   ", "other", "needs a label"),
        ("NEW", "New", "misc", "group 'misc' is not one of search, examination"),
    ],
)
def test_bad_doc_type_definitions_are_refused(
    code: str, label: str, group: str, message: str
) -> None:
    direction = "sideways" if "sideways" in message else None
    with pytest.raises(ValueError, match=re.escape(message)):
        DocType(code, label, group, direction)  # type: ignore[arg-type]


def test_in_group_rejects_unknown_groups() -> None:
    with pytest.raises(ValueError, match="use one of search"):
        DocTypeRegistry.with_defaults().in_group("misc")


def test_every_group_is_used_by_the_defaults() -> None:
    assert {t.group for t in DEFAULT_DOC_TYPES} == set(DOC_GROUPS)


# --- ST.14 categories -----------------------------------------------------------


def test_st14_categories_are_the_standard_ten() -> None:
    assert list(ST14_CATEGORIES) == ["X", "Y", "A", "O", "P", "T", "E", "D", "L", "&"]
    assert all(description.strip() for description in ST14_CATEGORIES.values())


@pytest.mark.parametrize(("given", "canonical"), [("X", "X"), (" y ", "Y"), ("&", "&"), ("d", "D")])
def test_validate_category_normalises(given: str, canonical: str) -> None:
    assert validate_category(given) == canonical


@pytest.mark.parametrize("bad", ["Z", "", "XY", "1"])
def test_validate_category_rejects_and_lists_the_valid_ones(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape("use one of X Y A O P T E D L &")):
        validate_category(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("P,X", ("P", "X")), ("x, y", ("X", "Y")), ("XY", ("X", "Y")), ("E/X", ("E", "X"))],
)
def test_split_categories_reads_combined_categories(text: str, expected: tuple[str, ...]) -> None:
    assert split_categories(text) == expected


@pytest.mark.parametrize("bad", ["", " , ", "X,Q"])
def test_split_categories_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match="use one of"):
        split_categories(bad)


# --- codes from any office ---------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "global-dossier"


def _recorded_codes() -> dict[tuple[str, str], str]:
    """(office, docCode) -> docDesc for every document in the recorded answers."""
    found: dict[tuple[str, str], str] = {}

    def walk(node: object, office: str) -> None:
        if isinstance(node, dict):
            office = node.get("countryCode") or node.get("country") or office
            if node.get("docCode"):
                found.setdefault((office, node["docCode"]), node.get("docDesc") or "")
            for value in node.values():
                walk(value, office)
        elif isinstance(node, list):
            for value in node:
                walk(value, office)

    for path in sorted(FIXTURES.glob("*.json")):
        walk(json.loads(path.read_text()), "")
    return found


def test_recorded_answers_hold_codes_of_three_offices() -> None:
    offices = {office for office, _ in _recorded_codes()}
    assert {"US", "JP", "EP"} <= offices
    assert len(_recorded_codes()) > 80


@pytest.mark.parametrize(("office", "code"), sorted(_recorded_codes()))
def test_every_recorded_code_has_a_group_and_a_direction(office: str, code: str) -> None:
    info = describe(office, code)
    assert info.known, f"{office} {code} ({_recorded_codes()[office, code]!r}) is in no table"
    assert info.group in DOC_GROUPS
    assert info.direction in DIRECTIONS


@pytest.mark.parametrize(
    ("office", "code", "group", "direction"),
    [
        ("US", "CTNF", "examination", "outgoing"),  # the office acts
        ("US", "CTFR", "examination", "outgoing"),
        ("US", "REM", "applicant", "incoming"),  # the applicant answers
        ("US", "A...", "applicant", "incoming"),
        ("US", "892", "search", "outgoing"),
        ("US", "1449", "search", "outgoing"),
        ("US", "IDS", "applicant", "incoming"),
        ("US", "SRNT", "search", "internal"),  # stays in the office
        ("US", "SRFW", "search", "internal"),
        ("US", "DRW.NONBW", "application", "incoming"),
        ("US", "LET.", "applicant", "incoming"),
        ("US", "NOA", "grant", "outgoing"),
        ("US", "CLM", "application", "incoming"),
        ("US", "SPEC", "application", "incoming"),
        ("US", "ABST", "application", "incoming"),
        ("JP", "A131", "examination", "outgoing"),
        ("JP", "A01", "grant", "outgoing"),
        ("JP", "A02", "examination", "outgoing"),
        ("JP", "A102", "examination", "outgoing"),
        ("JP", "A53", "applicant", "incoming"),
        ("KR", "CTNF", "examination", "outgoing"),
        ("CN", "NOA", "grant", "outgoing"),
        ("EP", "1503", "search", "outgoing"),
        ("EP", "2006", "grant", "outgoing"),
        ("GB", "EXRP", "examination", "outgoing"),  # no GB table: the common codes
    ],
)
def test_office_codes_are_filed_by_group_and_direction(
    office: str, code: str, group: str, direction: str
) -> None:
    info = describe(office, code)
    assert (info.group, info.direction, info.known) == (group, direction, True)


def test_an_office_table_gives_its_own_words_for_a_common_code() -> None:
    assert describe("JP", "A131").label == "Notice of reasons for refusal"
    assert describe("KR", "CTNF").label == "Notice of preliminary rejection"
    assert describe("US", "CTNF").label == "Non-final rejection"
    assert describe("AU", "CTNF").label == "Non-final office action"  # the common entry


def test_the_same_code_means_different_things_at_different_offices() -> None:
    assert describe("EP", "SPEC").label != describe("US", "SPEC").label
    assert describe("US", "A01").known is False  # a JPO code, not a USPTO one
    assert describe("JP", "A01").group == "grant"


def test_original_language_twin_is_filed_like_its_translation() -> None:
    twin = describe("JP", "A131-JP")
    assert twin.code == "A131-JP"
    assert (twin.group, twin.direction) == ("examination", "outgoing")
    assert twin.label == "Notice of reasons for refusal (original language)"


def test_the_offices_own_label_is_what_readers_see() -> None:
    info = describe("JP", "A131", label="Notice of Reasons for Refusal\n(TRANSLATED)")
    assert info.label == "Notice of Reasons for Refusal (TRANSLATED)"  # one line
    assert info.group == "examination"


def test_an_unknown_code_is_kept_not_refused() -> None:
    info = describe("KR", " x.99 ")
    assert (info.code, info.label, info.group, info.direction, info.known) == (
        "X.99", "X.99", "other", None, False)
    assert describe(None, "ZZZ", label="Note").label == "Note"


@pytest.mark.parametrize("code", ["CTNF", "892", "LET.", "A...", "DRW.NONBW", "A131-JP",
                                  "PD.FILED.E", "R46C.REQ", "12345678901234567890"])
def test_real_codes_are_well_formed(code: str) -> None:
    assert normalise_code(code.lower()) == code


@pytest.mark.parametrize("bad", ["", " ", "A B", "A_B", "CTNF;", "1234567890123456789012",
                                 "ÄÖ"])
def test_malformed_codes_say_what_a_code_may_look_like(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape("1 to 20 characters A-Z, 0-9, '.' or '-'")):
        normalise_code(bad)


def test_a_plugin_may_add_a_code_for_one_office() -> None:
    registry = DocTypeRegistry.with_defaults()
    registry.register(DocType("A151", "Decision to dismiss an amendment", "examination",
                              "outgoing", office="JP"))
    assert registry.describe("JP", "A151").label == "Decision to dismiss an amendment"
    assert registry.describe("KR", "A151").known is False
    assert not describe("JP", "A151").known  # the module's tables are the built-in ones
    with pytest.raises(DuplicateDocType, match="'A131' of JP is already registered"):
        registry.register(DocType("A131", "Again", "other", office="JP"))


def test_upload_form_offers_the_offices_codes_first() -> None:
    offered = DocTypeRegistry.with_defaults().for_office("US")
    codes = [t.code for t in offered]
    assert codes.index("DRW.NONBW") < codes.index("ISR")
    assert codes.count("CTNF") == 1 and offered[codes.index("CTNF")].office == "US"
