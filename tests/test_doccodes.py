"""Tests for caseforum.doccodes: the document code list and ST.14 categories."""

import re

import pytest

from caseforum.doccodes import (
    BUILTIN_DOC_TYPES,
    DEFAULT_DOC_TYPES,
    DOC_GROUPS,
    ST14_CATEGORIES,
    DocType,
    DocTypeRegistry,
    DuplicateDocType,
    UnknownDocType,
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
