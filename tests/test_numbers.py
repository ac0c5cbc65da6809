"""Tests for caseforum.numbers: reading, showing and spotting patent numbers."""

import re

import pytest

from caseforum.numbers import (
    DEFAULT_PATTERNS,
    KNOWN_OFFICES,
    AppNumber,
    NumberError,
    PubNumber,
    Reference,
    ReferencePattern,
    espacenet_url,
    find_references,
    parse_application_number,
    parse_publication_number,
    patentscope_url,
    search_link,
)

# --- application numbers: accepted forms ---------------------------------------


@pytest.mark.parametrize(
    ("text", "office", "expected"),
    [
        ("US 16/123,456", None, AppNumber("US", "16123456", "national")),
        ("US16123456", None, AppNumber("US", "16123456", "national")),
        ("us 16 123 456", None, AppNumber("US", "16123456", "national")),
        ("  US: 16/123456 ", None, AppNumber("US", "16123456", "national")),
        ("16123456", "US", AppNumber("US", "16123456", "national")),
        ("16/123,456", "us", AppNumber("US", "16123456", "national")),
        ("US 16/123,456", "US", AppNumber("US", "16123456", "national")),
        ("PCT/CN2015/000123", None, AppNumber("IB", "CN2015000123", "pct")),
        ("PCT/CN15/123", None, AppNumber("IB", "CN2015000123", "pct")),
        ("pct/cn 2015/123", None, AppNumber("IB", "CN2015000123", "pct")),
        ("PCT CN2015000123", None, AppNumber("IB", "CN2015000123", "pct")),
        ("PCT/IB2015/000123", None, AppNumber("IB", "IB2015000123", "pct")),
        ("PCT/US99/12345", None, AppNumber("IB", "US1999012345", "pct")),
        ("PCT/CN2015/000123", "JP", AppNumber("IB", "CN2015000123", "pct")),
        ("JP2017-187096", None, AppNumber("JP", "2017187096", "national")),
        ("JP 2017187096", None, AppNumber("JP", "2017187096", "national")),
        ("２０１７－１８７０９６", "JP", AppNumber("JP", "2017187096", "national")),
        ("CN201510123456.7", None, AppNumber("CN", "201510123456", "national")),
        ("CN 201510123456", None, AppNumber("CN", "201510123456", "national")),
        ("CN2015101234567", None, AppNumber("CN", "201510123456", "national")),
        ("CN 98123456.X", None, AppNumber("CN", "98123456", "national")),
        ("KR10-2015-0012345", None, AppNumber("KR", "1020150012345", "national")),
        ("KR 1020150012345", None, AppNumber("KR", "1020150012345", "national")),
        ("EP 15 123 456.7", None, AppNumber("EP", "15123456", "national")),
        ("EP15123456", None, AppNumber("EP", "15123456", "national")),
        ("EP151234567", None, AppNumber("EP", "15123456", "national")),
        ("GB1612345.6", None, AppNumber("GB", "1612345", "national")),
        ("DE 10 2015 123 456.7", None, AppNumber("DE", "102015123456", "national")),
        ("AU2015123456", None, AppNumber("AU", "2015123456", "national")),
        ("MY PI 2015701234", None, AppNumber("MY", "PI2015701234", "national")),
        ("PI 2015701234", "MY", AppNumber("MY", "PI2015701234", "national")),
        ("PH 1-2015-501234", None, AppNumber("PH", "12015501234", "national")),
        ("IN 201741012345", None, AppNumber("IN", "201741012345", "national")),
    ],
)
def test_application_number_forms(text: str, office: str | None, expected: AppNumber) -> None:
    assert parse_application_number(text, office=office) == expected


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("CN201510123456.7", "7"),
        ("CN2015101234567", "7"),
        ("CN 98123456.X", "X"),
        ("EP 15 123 456.7", "7"),
        ("EP151234567", "7"),
        ("GB1612345.6", "6"),
        ("CN 201510123456", None),
    ],
)
def test_check_digit_is_kept(text: str, check: str | None) -> None:
    assert parse_application_number(text).check == check


def test_check_digit_does_not_split_one_application_in_two() -> None:
    with_check = parse_application_number("CN201510123456.7")
    without = parse_application_number("CN 201510123456")
    assert with_check == without
    assert len({with_check, without}) == 1


@pytest.mark.parametrize(
    ("text", "display", "as_text"),
    [
        ("US16123456", "16/123,456", "US 16/123,456"),
        ("PCT/CN15/123", "PCT/CN2015/000123", "PCT/CN2015/000123"),
        ("JP2017187096", "2017-187096", "JP 2017-187096"),
        ("CN2015101234567", "201510123456.7", "CN 201510123456.7"),
        ("CN 201510123456", "201510123456", "CN 201510123456"),
        ("KR 1020150012345", "10-2015-0012345", "KR 10-2015-0012345"),
        ("EP 15 123 456.7", "15123456.7", "EP 15123456.7"),
        ("DE102015123456.7", "10 2015 123 456.7", "DE 10 2015 123 456.7"),
        ("AU 2015 123456", "2015123456", "AU 2015123456"),
        ("MY PI 2015701234", "PI2015701234", "MY PI2015701234"),
    ],
)
def test_application_display(text: str, display: str, as_text: str) -> None:
    number = parse_application_number(text)
    assert number.display == display
    assert str(number) == as_text


def test_display_round_trips_through_the_parser() -> None:
    for text in ["US 16/123,456", "PCT/CN2015/000123", "JP2017-187096", "KR10-2015-0012345"]:
        number = parse_application_number(text)
        assert parse_application_number(str(number)) == number


def test_caller_may_extend_the_known_offices() -> None:
    with pytest.raises(NumberError, match="not a known office code"):
        parse_application_number("KE 2015 000123")
    number = parse_application_number("KE 2015 000123", known_offices=KNOWN_OFFICES | {"KE"})
    assert number == AppNumber("KE", "2015000123", "national")


# --- application numbers: errors -------------------------------------------------


def test_too_short_says_how_many_digits() -> None:
    with pytest.raises(NumberError) as caught:
        parse_application_number("US 16/12")
    assert str(caught.value).startswith(
        "'US 16/12' is too short for a US application number: expected 8 digits"
    )


def test_number_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_application_number("US 16/12")


@pytest.mark.parametrize(
    ("text", "office", "message"),
    [
        ("US 16/123,4567", None, "is too long for a US application number: expected 8 digits"),
        ("CN2015101234", None, "wrong number of digits for a CN application number"),
        ("EP 15 123", None, "too short for an EP application number"),
        ("US 16/12345A", None, "contains 'A': a US application number has digits only"),
        ("JP1817-187096", None, "should start with the 4-digit filing year"),
        ("KR90-2015-0012345", None, "right code 10 (patent)"),
        ("XX 123456", None, "'XX', which is not a known office code"),
        ("16123456", None, "has no office code: put one in front, as in 'US 16123456'"),
        ("16123456", "ZZ", "unknown office code 'ZZ'"),
        ("US", None, "has no number after the office code US"),
        ("US //", None, "has no number after the office code US"),
        ("   ", None, "is empty"),
        ("JP2017-187096", "US", "is a JP number but the office given is US"),
        ("WO2016/123456", None, "international applications are written PCT/CC YYYY/NNNNNN"),
        ("IB 2015000123", None, "international applications are written PCT/CC YYYY/NNNNNN"),
        ("SG 12", None, "too short for an SG application number: expected at least 4"),
        ("SG 1234567890123456789012", None, "too long for an SG application number"),
        ("SG 2015#0123", None, "contains '#'"),
    ],
)
def test_application_errors_say_what_to_fix(text: str, office: str | None, message: str) -> None:
    with pytest.raises(NumberError, match=re.escape(message)):
        parse_application_number(text, office=office)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PCT/XX2015/000123", "names receiving office 'XX'"),
        ("PCT/CN2015/0001234", "has 7 digits but PCT serials have at most 6"),
        ("PCT/CN215/000123", "should have 4 digits (or 2)"),
        ("PCT/CN1970/000123", "before the first PCT filings in 1978"),
        ("PCT/CN201500012", "separate the year and the serial with '/'"),
        ("PCT/", "expected PCT/CC YYYY/NNNNNN"),
        ("PCT/CN", "expected PCT/CC YYYY/NNNNNN"),
    ],
)
def test_pct_errors_show_the_expected_form(text: str, message: str) -> None:
    with pytest.raises(NumberError, match=re.escape(message)):
        parse_application_number(text)


# --- publication numbers -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "display"),
    [
        ("WO 2016/123456 A1", PubNumber("WO", "2016123456", "A1"), "WO 2016/123456 A1"),
        ("WO2016123456", PubNumber("WO", "2016123456", None), "WO 2016/123456"),
        ("wo 2016/123456a1", PubNumber("WO", "2016123456", "A1"), "WO 2016/123456 A1"),
        ("WO 99/12345", PubNumber("WO", "1999012345", None), "WO 1999/012345"),
        ("WO9912345A1", PubNumber("WO", "1999012345", "A1"), "WO 1999/012345 A1"),
        ("US 2019/0123456 A1", PubNumber("US", "20190123456", "A1"), "US 2019/0123456 A1"),
        ("US20190123456A1", PubNumber("US", "20190123456", "A1"), "US 2019/0123456 A1"),
        ("US10123456B2", PubNumber("US", "10123456", "B2"), "US 10,123,456 B2"),
        ("US 10,123,456 B2", PubNumber("US", "10123456", "B2"), "US 10,123,456 B2"),
        ("US 7,123,456", PubNumber("US", "7123456", None), "US 7,123,456"),
        ("USD812,345 S", PubNumber("US", "D812345", "S"), "US D812345 S"),
        ("US RE49,123 E", PubNumber("US", "RE49123", "E"), "US RE49123 E"),
        ("EP1000000", PubNumber("EP", "1000000", None), "EP 1 000 000"),
        ("EP 1 000 000 B1", PubNumber("EP", "1000000", "B1"), "EP 1 000 000 B1"),
        ("CN105123456A", PubNumber("CN", "105123456", "A"), "CN 105123456 A"),
        ("JP2017187096A", PubNumber("JP", "2017187096", "A"), "JP 2017-187096 A"),
        ("JP 2017-187096 A", PubNumber("JP", "2017187096", "A"), "JP 2017-187096 A"),
        ("JP6123456B2", PubNumber("JP", "6123456", "B2"), "JP 6123456 B2"),
        ("JPH11-123456A", PubNumber("JP", "H11123456", "A"), "JP H11123456 A"),
        ("KR101234567B1", PubNumber("KR", "101234567", "B1"), "KR 101234567 B1"),
        ("AU 2015123456 A1", PubNumber("AU", "2015123456", "A1"), "AU 2015123456 A1"),
    ],
)
def test_publication_number_forms(text: str, expected: PubNumber, display: str) -> None:
    number = parse_publication_number(text)
    assert number == expected
    assert number.display == display
    assert str(number) == display


def test_publication_office_argument_fills_in_a_bare_number() -> None:
    assert parse_publication_number("1000000 B1", office="EP") == PubNumber("EP", "1000000", "B1")


def test_kind_code_distinguishes_publications() -> None:
    assert parse_publication_number("WO2016123456A1") != parse_publication_number("WO2016123456A3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("US 16/123,456", "looks like a US application number"),
        ("US 12345", "too short for a US publication number"),
        ("US10123456ZZ", "contains 'Z'"),
        ("USD 1,500", "contains 'D'"),
        ("EP15123456", "8-digit EP numbers are applications"),
        ("CN201510123456", "too long for a CN publication number"),
        ("JP 17-187096 A", "expected year and 6 digits (JP 2017-187096 A)"),
        ("WO 2016/1234567", "expected WO YYYY/NNNNNN"),
        ("WO 20161234", "expected WO YYYY/NNNNNN"),
        ("WO1970/123456", "before the first PCT publications in 1978"),
        ("PCT/CN2015/000123", "its publication is written WO YYYY/NNNNNN"),
        ("IB2016123456", "WIPO publishes international applications under WO"),
        ("1000000", "has no office code"),
        ("", "is empty"),
    ],
)
def test_publication_errors_say_what_to_fix(text: str, message: str) -> None:
    with pytest.raises(NumberError, match=re.escape(message)):
        parse_publication_number(text)


# --- link-outs -------------------------------------------------------------------


def test_wo_publications_link_to_patentscope() -> None:
    pub = parse_publication_number("WO 2016/123456 A1")
    url = "https://patentscope.wipo.int/search/en/detail.jsf?docId=WO2016123456"
    assert patentscope_url(pub) == url
    assert search_link(pub) == url


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("EP 1 000 000 B1", "https://worldwide.espacenet.com/patent/search?q=pn%3DEP1000000"),
        ("US10123456B2", "https://worldwide.espacenet.com/patent/search?q=pn%3DUS10123456"),
        # Espacenet writes US pre-grant publications without the serial's leading zero
        ("US 2019/0123456 A1", "https://worldwide.espacenet.com/patent/search?q=pn%3DUS2019123456"),
        ("CN105123456A", "https://worldwide.espacenet.com/patent/search?q=pn%3DCN105123456"),
    ],
)
def test_other_publications_link_to_espacenet(text: str, url: str) -> None:
    pub = parse_publication_number(text)
    assert espacenet_url(pub) == url
    assert search_link(pub) == url


def test_patentscope_link_refuses_non_wo_numbers() -> None:
    with pytest.raises(NumberError, match="use search_link"):
        patentscope_url(parse_publication_number("EP1000000"))


def test_links_escape_odd_numbers() -> None:
    url = search_link(PubNumber("XX", "1 2&3", None))
    assert " " not in url and "&" not in url.split("?", 1)[1]


# --- finding numbers in forum posts ---------------------------------------------

FORUM_POST = (
    "On 12/05/2016 the applicant (tel. +1 571-272-1000, fax 03-3581-1101) filed "
    "US 16/123,456, claiming priority of JP2017-187096. The ISR in PCT/CN2015/000123 "
    "cites WO 2016/123456 A1 (category X) and EP1000000. The US examiner relied on "
    "US 2019/0123456 A1 and US10123456B2; the US fee was US$1,600 and claims 1-20 "
    "were rejected under 35 U.S.C. 103. See also CN201510123456.7 and "
    "KR10-2015-0012345, version 2.3.1, ISO 9001 and PCT Rule 43bis.1. Call 1234567 "
    "or pay USD 1,500,000 by 2019-01-23. Also US16123456, EP 15 123 456.7, "
    "JP2017-187096 A and CN105123456A; let us 16 talk about it."
)


def test_forum_post_references_in_order() -> None:
    found = [(ref.text, str(ref.number)) for ref in find_references(FORUM_POST)]
    assert found == [
        ("US 16/123,456", "US 16/123,456"),
        ("JP2017-187096", "JP 2017-187096"),
        ("PCT/CN2015/000123", "PCT/CN2015/000123"),
        ("WO 2016/123456 A1", "WO 2016/123456 A1"),
        ("EP1000000", "EP 1 000 000"),
        ("US 2019/0123456 A1", "US 2019/0123456 A1"),
        ("US10123456B2", "US 10,123,456 B2"),
        ("CN201510123456.7", "CN 201510123456.7"),
        ("KR10-2015-0012345", "KR 10-2015-0012345"),
        ("US16123456", "US 16/123,456"),
        ("EP 15 123 456.7", "EP 15123456.7"),
        ("JP2017-187096 A", "JP 2017-187096 A"),
        ("CN105123456A", "CN 105123456 A"),
    ]


def test_forum_post_spans_point_at_the_text() -> None:
    refs = find_references(FORUM_POST)
    assert refs
    for ref in refs:
        assert FORUM_POST[ref.start : ref.end] == ref.text
        assert ref.span == (ref.start, ref.end)


def test_forum_post_spans_do_not_overlap() -> None:
    refs = find_references(FORUM_POST)
    for before, after in zip(refs, refs[1:], strict=False):
        assert before.end <= after.start


def test_forum_post_tells_applications_from_publications() -> None:
    kinds = {ref.text: ref.is_application for ref in find_references(FORUM_POST)}
    assert kinds["US 16/123,456"] is True
    assert kinds["PCT/CN2015/000123"] is True
    assert kinds["WO 2016/123456 A1"] is False
    assert kinds["JP2017-187096"] is True
    assert kinds["JP2017-187096 A"] is False


@pytest.mark.parametrize(
    "text",
    [
        "Filed in the US on 12/05/2016.",
        "US",
        "The US examiner agreed; EP and JP did not.",
        "Call +1 571-272-1000 or 03-3581-1101.",
        "The fee is US$1,600 or USD 1,500,000.",
        "Claims 1-20, 35 U.S.C. 103, ISO 9001, PCT Rule 43bis.1, PCT Article 33(2).",
        "Reference number 16123456 and 2016/123456 have no office code.",
        "let us 16 123 456 go",
        "BUS16123456 and US16123456789 are not numbers",
        "PCT/XX2015/000123 names no real office",
        "Dates: 2019-01-23, 23.01.2019, 2017-187096.",
        "",
    ],
)
def test_ordinary_text_finds_nothing(text: str) -> None:
    assert find_references(text) == []


def test_reference_next_to_punctuation() -> None:
    refs = find_references("(see WO2016123456A1), and [US 16/123,456].")
    assert [ref.text for ref in refs] == ["WO2016123456A1", "US 16/123,456"]


def test_no_break_space_inside_a_number() -> None:
    refs = find_references("filed as US\u00a016/123,456 last year")
    assert [str(ref.number) for ref in refs] == ["US 16/123,456"]


def test_longest_match_wins_over_a_shorter_overlapping_one() -> None:
    (ref,) = find_references("JP2017-187096 A")
    assert ref.pattern == "jp_publication"
    assert ref.number == PubNumber("JP", "2017187096", "A")


def test_same_number_found_by_two_patterns_is_reported_once() -> None:
    refs = find_references("EP1000000A1")
    assert [(ref.text, ref.pattern) for ref in refs] == [("EP1000000A1", "ep_publication")]


def test_default_pattern_names_are_unique() -> None:
    names = [pattern.name for pattern in DEFAULT_PATTERNS]
    assert len(names) == len(set(names))


def test_no_patterns_find_nothing() -> None:
    assert find_references(FORUM_POST, patterns=()) == []


def test_plugin_pattern_extends_the_defaults() -> None:
    serial = ReferencePattern(
        "us_serial_no",
        r"Serial No\. \d{2}/\d{3},\d{3}",
        lambda text: parse_application_number(text.split(". ", 1)[1], office="US"),
    )
    assert isinstance(serial.regex, re.Pattern)
    refs = find_references(
        "See Serial No. 17/654,321 and WO2016123456.", [*DEFAULT_PATTERNS, serial]
    )
    assert [(ref.text, ref.pattern, str(ref.number)) for ref in refs] == [
        ("Serial No. 17/654,321", "us_serial_no", "US 17/654,321"),
        ("WO2016123456", "wo_publication", "WO 2016/123456"),
    ]


def test_pattern_whose_parser_refuses_is_skipped() -> None:
    def refuse(text: str) -> AppNumber:
        raise NumberError("not this one")

    always = ReferencePattern("always", r"US\d+", refuse)
    assert find_references("US16123456", [always]) == []


def test_reference_carries_the_parsed_number() -> None:
    (ref,) = find_references("see PCT/CN15/123 for details")
    assert ref == Reference(
        4, 16, "PCT/CN15/123", AppNumber("IB", "CN2015000123", "pct"), "pct_application"
    )
