"""Patent application and publication numbers: read them, show them, spot them.

Everything here is a pure function of its arguments (no web, no database), so
the number box, forum posts, bots and plugins all share one idea of what a
number is and how it is written.

Normalisation choices
---------------------
* ``number`` keeps only the significant characters: spaces, ``/``, ``,``,
  ``-`` and ``.`` are dropped, letters are upper-cased and full-width CJK
  digits become ASCII, so the same number typed two ways gives equal objects.
* Office codes are WIPO ST.3 two-letter codes checked against
  :data:`KNOWN_OFFICES`; callers that know more offices (say, the ones in the
  database) pass their own set as ``known_offices``.
* A PCT application is stored with office ``"IB"`` (the International Bureau
  keeps the international file and takes part in CaseForum as an office),
  ``kind="pct"``, and ``number`` = receiving office + 4-digit year + 6-digit
  serial: ``PCT/CN2015/000123`` -> ``AppNumber("IB", "CN2015000123", "pct")``.
  WO *publications* keep office ``"WO"``, the code printed on them.
* Two-digit years (``PCT/CN15/123``, ``WO 99/12345``) mean 20YY when YY is
  below 78 and 19YY from 78 on, since PCT filings began in 1978.  Short PCT
  and WO serials are zero-padded to 6 digits.
* CN, EP, GB and DE application check digits are kept in ``check``, which is
  left out of equality and hashing: people quote the same application both
  with and without it, and both must find the same dossier.
* ``display`` is the form the office itself prints.  For applications that is
  without the office code (US ``16/123,456``, JP ``2017-187096``; PCT
  ``PCT/CN2015/000123``); ``str()`` adds the code for running text.
  Publications are always cited with their code (``WO 2016/123456 A1``).
  Offices without a known layout show the normalised number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from caseforum import errors


class NumberError(errors.InvalidInput, ValueError):
    """A number could not be read; the message says what to change.

    Also a ``ValueError``: a reference pattern's ``parse`` signals "not a number" with
    ``ValueError`` (docs/plugin_hooks.md), and plugins written to that contract catch it.
    """


#: WIPO ST.3 codes accepted as offices (and PCT receiving offices) by default:
#: the participating offices plus the other big filing offices.
KNOWN_OFFICES: frozenset[str] = frozenset(
    {
        "AU", "CA", "CN", "IL", "JP", "KR", "GB", "US", "IB", "EP", "WO", "CL", "IN",
        "ID", "LA", "MY", "MN", "NZ", "PH", "SG", "TH", "VN", "DE", "FR", "BR", "RU",
        "AT", "BE", "BN", "CH", "CZ", "DK", "EA", "ES", "FI", "HK", "IE", "IS", "IT",
        "KH", "MM", "MX", "NL", "NO", "PL", "PT", "SE", "TR", "TW", "ZA",
    }
)  # fmt: skip

AppKind = Literal["national", "pct"]

_FIRST_PCT_YEAR = 1978
_SEPARATORS = re.compile(r"[\s/,.\-]+")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_LETTERS = re.compile(r"[A-Z]*", re.ASCII)
_PCT_PREFIX = re.compile(r"PCT(?![A-Z])\s*/?\s*(.*)", re.ASCII | re.DOTALL)
_PCT_BODY = re.compile(r"([A-Z]{2})\s*([0-9]+)\s*(?:/\s*([0-9]+))?", re.ASCII)
_CHECK_SUFFIX = re.compile(r"(.*?[0-9])\s*\.\s*([0-9X])", re.ASCII | re.DOTALL)
_KIND_SUFFIX = re.compile(r"(.*?[0-9])\s*([A-Z][0-9]?)", re.ASCII | re.DOTALL)
_PCT_EXAMPLE = "expected PCT/CC YYYY/NNNNNN, as in PCT/CN2015/000123"


def _clean(text: str) -> str:
    """Fold full-width characters and case so the patterns below see ASCII."""
    return unicodedata.normalize("NFKC", text).strip().upper()


def _full_year(year: str) -> str:
    """Expand a 2-digit year; 78-99 are the 1900s because PCT started in 1978."""
    if len(year) != 2:
        return year
    yy = int(year)
    return str(1900 + yy if yy >= _FIRST_PCT_YEAR % 100 else 2000 + yy)


def _is_digits(text: str) -> bool:
    return _DIGITS.fullmatch(text) is not None


def _a(code: str) -> str:
    """'a US ...' but 'an EP ...': the article goes by how the letter sounds."""
    return f"an {code}" if code[:1] in "AEFHILMNORSX" else f"a {code}"


def _starts_with_year(number: str) -> str | None:
    if number[:2] not in ("19", "20"):
        return "it should start with the 4-digit filing year"
    return None


def _cn_problem(number: str) -> str | None:
    return _starts_with_year(number) if len(number) == 12 else None


def _kr_problem(number: str) -> str | None:
    if number[:2] not in ("10", "20", "30", "40"):
        return (
            "it should start with the right code 10 (patent), 20 (utility model), "
            "30 (design) or 40 (trademark)"
        )
    return _starts_with_year(number[2:])


def _no_problem(number: str) -> str | None:
    return None


def _as_is(number: str) -> str:
    return number


def _de_display(number: str) -> str:
    if len(number) == 12:
        return f"{number[:2]} {number[2:6]} {number[6:9]} {number[9:]}"
    return f"{number[:3]} {number[3:5]} {number[5:]}"


@dataclass(frozen=True)
class _AppFormat:
    """How one office lays out its national application numbers."""

    lengths: tuple[int, ...]
    expected: str
    display: Callable[[str], str] = _as_is
    check_digit: bool = False
    problem: Callable[[str], str | None] = _no_problem


_APP_FORMATS: dict[str, _AppFormat] = {
    "US": _AppFormat((8,), "8 digits, as in US 16/123,456", lambda n: f"{n[:2]}/{n[2:5]},{n[5:]}"),
    "JP": _AppFormat(
        (10,),
        "10 digits (year and 6-digit serial), as in JP2017-187096",
        lambda n: f"{n[:4]}-{n[4:]}",
        problem=_starts_with_year,
    ),
    "CN": _AppFormat(
        (12, 8),
        "12 digits (8 for filings before 2003) and an optional check digit, as in CN201510123456.7",
        check_digit=True,
        problem=_cn_problem,
    ),
    "KR": _AppFormat(
        (13,),
        "13 digits (right code, year, 7-digit serial), as in KR10-2015-0012345",
        lambda n: f"{n[:2]}-{n[2:6]}-{n[6:]}",
        problem=_kr_problem,
    ),
    "EP": _AppFormat(
        (8,), "8 digits and an optional check digit, as in EP 15 123 456.7", check_digit=True
    ),
    "GB": _AppFormat(
        (7,), "7 digits and an optional check digit, as in GB1612345.6", check_digit=True
    ),
    "DE": _AppFormat(
        (12, 8),
        "12 digits (8 before 2004) and an optional check digit, as in DE 10 2015 123 456.7",
        _de_display,
        check_digit=True,
    ),
    "AU": _AppFormat(
        (10,),
        "10 digits (year and 6-digit serial), as in AU2015123456",
        problem=_starts_with_year,
    ),
}


@dataclass(frozen=True)
class AppNumber:
    """An application number in normalised form; see the module notes."""

    office: str
    number: str
    kind: AppKind
    check: str | None = field(default=None, compare=False)

    @property
    def display(self) -> str:
        """The number as the office prints it, without the office code."""
        if self.kind == "pct":
            n = self.number
            return f"PCT/{n[:2]}{n[2:6]}/{n[6:]}"
        fmt = _APP_FORMATS.get(self.office)
        shown = fmt.display(self.number) if fmt else self.number
        return f"{shown}.{self.check}" if self.check else shown

    def __str__(self) -> str:
        return self.display if self.kind == "pct" else f"{self.office} {self.display}"


@dataclass(frozen=True)
class PubNumber:
    """A publication (or grant) number with its optional ST.16 kind code."""

    office: str
    number: str
    kind_code: str | None = None

    @property
    def display(self) -> str:
        """The citation form: office code, the office's layout, kind code."""
        n, office = self.number, self.office
        if office == "WO" and len(n) == 10:
            shown = f"WO {n[:4]}/{n[4:]}"
        elif office == "US" and _is_digits(n) and len(n) == 11:
            shown = f"US {n[:4]}/{n[4:]}"
        elif office == "US" and _is_digits(n):
            shown = f"US {int(n):,}"
        elif office == "EP" and _is_digits(n):
            shown = "EP " + f"{int(n):,}".replace(",", " ")
        elif office == "JP" and _is_digits(n) and len(n) == 10:
            shown = f"JP {n[:4]}-{n[4:]}"
        else:
            shown = f"{office} {n}"
        return f"{shown} {self.kind_code}" if self.kind_code else shown

    def __str__(self) -> str:
        return self.display


def _office_argument(office: str, known: Collection[str]) -> str:
    code = _clean(office)
    if code not in known:
        raise NumberError(
            f"unknown office code {office!r}: use a WIPO ST.3 two-letter code "
            "such as US, EP, CN, JP or KR"
        )
    return code


def _split_office(
    clean: str, original: str, office: str | None, known: Collection[str]
) -> tuple[str, str]:
    """Separate the office prefix from the rest; an explicit prefix must agree
    with ``office`` so a slip does not file a number under the wrong office."""
    letters = _LETTERS.match(clean)
    head = letters.group() if letters else ""
    if head[:2] in known:
        # a glued suffix stays with the number: USD812345 is US + D812345
        code, rest = head[:2], clean[2:].lstrip(" :-")
        if office is not None and code != office:
            raise NumberError(
                f"{original!r} is {_a(code)} number but the office given is {office}: "
                "remove the prefix or choose the right office"
            )
    elif len(head) >= 2 and office is None:
        raise NumberError(
            f"{original!r} starts with {head[:2]!r}, which is not a known office code: "
            "start with a WIPO ST.3 code such as US, EP, CN, JP or KR"
        )
    elif office is None:
        raise NumberError(
            f"{original!r} has no office code: put one in front, as in "
            f"'US {original.strip()}', or choose the office"
        )
    else:
        code, rest = office, clean
    if not _SEPARATORS.sub("", rest):
        raise NumberError(f"{original!r} has no number after the office code {code}")
    return code, rest


def _length_problem(
    original: str, count: int, lengths: Iterable[int], what: str, expected: str
) -> NumberError:
    lengths = tuple(lengths)
    if count < min(lengths):
        verdict = "is too short for"
    elif count > max(lengths):
        verdict = "is too long for"
    else:
        verdict = "has the wrong number of digits for"
    return NumberError(f"{original!r} {verdict} {what}: expected {expected}")


def _only_digits(digits: str, original: str, what: str, expected: str) -> None:
    bad = sorted({c for c in digits if not _is_digits(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise NumberError(
            f"{original!r} contains {shown}: {what} has digits only; expected {expected}"
        )


def _generic(rest: str, original: str, what: str) -> str:
    """Offices whose layout we do not model: keep letters and digits, check size."""
    compact = _SEPARATORS.sub("", rest)
    bad = sorted({c for c in compact if not (c.isascii() and c.isalnum())})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise NumberError(
            f"{original!r} contains {shown}: use only letters, digits, spaces, '/', '-' or '.'"
        )
    if len(compact) < 4 or not any(c.isdigit() for c in compact):
        raise NumberError(
            f"{original!r} is too short for {what}: expected at least 4 characters including digits"
        )
    if len(compact) > 20:
        raise NumberError(f"{original!r} is too long for {what}: expected at most 20 characters")
    return compact


def _parse_pct(body: str, original: str, known: Collection[str]) -> AppNumber:
    m = _PCT_BODY.fullmatch(body.strip())
    if m is None:
        raise NumberError(f"{original!r} is not a PCT application number: {_PCT_EXAMPLE}")
    office, year, serial = m.groups()
    if serial is None:
        if len(year) != 10:
            raise NumberError(
                f"{original!r}: separate the year and the serial with '/': {_PCT_EXAMPLE}"
            )
        year, serial = year[:4], year[4:]
    if office not in known:
        raise NumberError(
            f"{original!r} names receiving office {office!r}, which is not a known "
            f"office code: {_PCT_EXAMPLE}"
        )
    if len(year) not in (2, 4):
        raise NumberError(f"the year in {original!r} should have 4 digits (or 2): {_PCT_EXAMPLE}")
    year = _full_year(year)
    if int(year) < _FIRST_PCT_YEAR:
        raise NumberError(
            f"{original!r} gives the year {year}, before the first PCT filings in "
            f"{_FIRST_PCT_YEAR}: check the year"
        )
    if len(serial) > 6:
        raise NumberError(
            f"the serial in {original!r} has {len(serial)} digits but PCT serials have "
            f"at most 6: {_PCT_EXAMPLE}"
        )
    return AppNumber("IB", f"{office}{year}{serial.zfill(6)}", "pct")


def parse_application_number(
    text: str,
    *,
    office: str | None = None,
    known_offices: Collection[str] = KNOWN_OFFICES,
) -> AppNumber:
    """Read an application number typed the way people type them.

    ``office`` is used when ``text`` has no office code of its own; a code in
    the text that disagrees with it is an error.  ``PCT/...`` numbers are
    international applications whatever ``office`` says.
    """
    clean = _clean(text)
    if not clean:
        raise NumberError(
            "the application number is empty: type one such as US 16/123,456 or PCT/CN2015/000123"
        )
    pct = _PCT_PREFIX.fullmatch(clean)
    if pct:
        return _parse_pct(pct.group(1), text, known_offices)
    given = _office_argument(office, known_offices) if office is not None else None
    code, rest = _split_office(clean, text, given, known_offices)
    if code in ("IB", "WO"):
        raise NumberError(
            f"{text!r} is not an application number: international applications are "
            "written PCT/CC YYYY/NNNNNN, as in PCT/CN2015/000123 (WO numbers are "
            "publications)"
        )
    fmt = _APP_FORMATS.get(code)
    what = f"{_a(code)} application number"
    if fmt is None:
        return AppNumber(code, _generic(rest, text, what), "national")

    body, check = rest, None
    if fmt.check_digit:
        m = _CHECK_SUFFIX.fullmatch(rest)
        if m:
            body, check = m.groups()
    digits = _SEPARATORS.sub("", body)
    if (
        fmt.check_digit
        and check is None
        and len(digits) - 1 in fmt.lengths
        and len(digits) not in fmt.lengths
        and _is_digits(digits[:-1])
        and digits[-1] in "0123456789X"
    ):
        digits, check = digits[:-1], digits[-1]
    _only_digits(digits, text, what, fmt.expected)
    if len(digits) not in fmt.lengths:
        raise _length_problem(text, len(digits), fmt.lengths, what, fmt.expected)
    problem = fmt.problem(digits)
    if problem:
        raise NumberError(f"{text!r} is not {what}: {problem}; expected {fmt.expected}")
    return AppNumber(code, digits, "national", check)


def _wo_number(body: str, original: str) -> str:
    expected = "expected WO YYYY/NNNNNN, as in WO 2016/123456 A1"
    m = re.fullmatch(r"([0-9]+)\s*/\s*([0-9]+)", body.strip(), re.ASCII)
    if m:
        year, serial = m.groups()
    else:
        digits = _SEPARATORS.sub("", body)
        _only_digits(digits, original, "a WO publication number", expected)
        if len(digits) == 10:
            year, serial = digits[:4], digits[4:]
        elif len(digits) == 7:  # before 2004: WO9912345
            year, serial = digits[:2], digits[2:]
        else:
            raise _length_problem(
                original, len(digits), (7, 10), "a WO publication number", expected
            )
    if len(year) not in (2, 4) or len(serial) > 6:
        raise NumberError(f"{original!r} is not a WO publication number: {expected}")
    year = _full_year(year)
    if int(year) < _FIRST_PCT_YEAR:
        raise NumberError(
            f"{original!r} gives the year {year}, before the first PCT publications in "
            f"{_FIRST_PCT_YEAR}: check the year"
        )
    return year + serial.zfill(6)


def _us_number(body: str, original: str) -> str:
    expected = (
        "a patent number of 6 to 8 digits (US 10,123,456 B2) or a pre-grant "
        "publication number, year and 7 digits (US 2019/0123456 A1)"
    )
    stripped = body.strip()
    if re.fullmatch(r"[0-9]{2}\s*/\s*[0-9]{3},?[0-9]{3}", stripped, re.ASCII):
        raise NumberError(
            f"{original!r} looks like a US application number (series code/serial), "
            f"not a publication: expected {expected}"
        )
    m = re.fullmatch(r"((?:19|20)[0-9]{2})\s*[/-]\s*([0-9]{1,7})", stripped, re.ASCII)
    if m:
        return m.group(1) + m.group(2).zfill(7)
    compact = _SEPARATORS.sub("", stripped)
    if re.fullmatch(r"(?:D|RE|PP)[0-9]{5,7}|H[0-9]{1,4}", compact, re.ASCII):
        return compact  # design, reissue, plant patent; statutory invention registration
    _only_digits(compact, original, "a US publication number", expected)
    if (len(compact) == 11 and compact[:2] in ("19", "20")) or 6 <= len(compact) <= 8:
        return compact
    raise _length_problem(original, len(compact), (6, 11), "a US publication number", expected)


def _fixed_digits(
    body: str, original: str, code: str, lengths: tuple[int, ...], expected: str
) -> str:
    digits = _SEPARATORS.sub("", body)
    what = f"{_a(code)} publication number"
    _only_digits(digits, original, what, expected)
    if len(digits) not in lengths:
        raise _length_problem(original, len(digits), lengths, what, expected)
    return digits


def _jp_number(body: str, original: str) -> str:
    compact = _SEPARATORS.sub("", body)
    if re.fullmatch(r"(?:19|20)[0-9]{8}|[0-9]{7}|[HS][0-9]{8}", compact, re.ASCII):
        return compact
    raise NumberError(
        f"{original!r} is not a JP publication number: expected year and 6 digits "
        "(JP 2017-187096 A) or a 7-digit patent number (JP 6123456 B2)"
    )


def parse_publication_number(
    text: str,
    *,
    office: str | None = None,
    known_offices: Collection[str] = KNOWN_OFFICES,
) -> PubNumber:
    """Read a publication or patent number, with or without its kind code.

    ``office`` plays the same part as in :func:`parse_application_number`.
    """
    clean = _clean(text)
    if not clean:
        raise NumberError(
            "the publication number is empty: type one such as WO 2016/123456 A1 or US10123456B2"
        )
    if _PCT_PREFIX.fullmatch(clean):
        raise NumberError(
            f"{text!r} is an international application number; its publication is "
            "written WO YYYY/NNNNNN, as in WO 2016/123456 A1"
        )
    given = _office_argument(office, known_offices) if office is not None else None
    code, rest = _split_office(clean, text, given, known_offices)
    m = _KIND_SUFFIX.fullmatch(rest)
    body, kind = m.groups() if m else (rest, None)
    if code == "IB":
        raise NumberError(
            f"{text!r}: WIPO publishes international applications under WO, as in WO 2016/123456 A1"
        )
    if code == "WO":
        number = _wo_number(body, text)
    elif code == "US":
        number = _us_number(body, text)
    elif code == "EP":
        number = _fixed_digits(
            body, text, code, (7,),
            "7 digits, as in EP 1 000 000 A1 (8-digit EP numbers are applications)",
        )  # fmt: skip
    elif code == "CN":
        number = _fixed_digits(
            body, text, code, (7, 8, 9),
            "9 digits (7 for older ones), as in CN 105123456 A",
        )  # fmt: skip
    elif code == "JP":
        number = _jp_number(body, text)
    else:
        number = _generic(body, text, f"{_a(code)} publication number")
    return PubNumber(code, number, kind)


# --- link-outs ---------------------------------------------------------------

PATENTSCOPE_DETAIL_URL = "https://patentscope.wipo.int/search/en/detail.jsf?docId="
ESPACENET_SEARCH_URL = "https://worldwide.espacenet.com/patent/search?q=pn%3D"


def patentscope_url(pub: PubNumber) -> str:
    """PATENTSCOPE page of a WO publication (best effort; never fetched here)."""
    if pub.office != "WO":
        raise NumberError(
            f"PATENTSCOPE links are built for WO publications only, not {pub}: "
            "use search_link() instead"
        )
    return PATENTSCOPE_DETAIL_URL + quote(f"WO{pub.number}", safe="")


def espacenet_url(pub: PubNumber) -> str:
    """An Espacenet search for the number, which finds all its kind codes."""
    number = pub.number
    if pub.office == "US" and len(number) == 11 and _is_digits(number) and number[4] == "0":
        number = number[:4] + number[5:]  # Espacenet (DOCDB) drops the serial's leading 0
    return ESPACENET_SEARCH_URL + quote(f"{pub.office}{number}", safe="")


def search_link(pub: PubNumber) -> str:
    """Where to send a reader who clicks a publication number."""
    return patentscope_url(pub) if pub.office == "WO" else espacenet_url(pub)


# --- one reading for every box -------------------------------------------------
#
# The number box, ``/api/v1/lookup``, the search box and the references in posts
# all ask :func:`read_number`, so a number is understood (or not) the same way
# everywhere.  On top of the ST.3-prefixed forms above it reads the forms that
# examiners copy from their own office's documents: the native prefixes of JP, CN
# and KR (特願, 特開, 特許第…号, 申请号, 출원번호 …), the bare Korean layout
# ``10-2021-7028846`` and the ST.13 form of PCT applications (``WO2015CN000123``).

MatchedAs = Literal["application", "publication", "priority", "pct"]

#: native prefixes: what they announce (office, application or publication, the
#: kind code a publication gets when none is typed)
_NATIVE_PREFIXES: tuple[tuple[str, str, str, str | None], ...] = (
    # Japanese: application, unexamined / PCT-national publication, examined, patent
    ("特許出願", "JP", "application", None),
    ("特願", "JP", "application", None),
    ("実願", "JP", "application", None),
    ("特開", "JP", "publication", "A"),
    ("特表", "JP", "publication", "A"),
    ("特公", "JP", "publication", "B"),
    ("特許第", "JP", "publication", "B"),
    ("特許", "JP", "publication", "B"),
    # Chinese (simplified and traditional): application, publication, grant
    ("专利申请号", "CN", "application", None),
    ("專利申請號", "CN", "application", None),
    ("申请号", "CN", "application", None),
    ("申請號", "CN", "application", None),
    ("申请", "CN", "application", None),
    ("公开号", "CN", "publication", "A"),
    ("公布号", "CN", "publication", "A"),
    ("授权公告号", "CN", "publication", "B"),
    ("公告号", "CN", "publication", "B"),
    # Korean: application, publication, registration
    ("특허출원번호", "KR", "application", None),
    ("출원번호", "KR", "application", None),
    ("특허출원", "KR", "application", None),
    ("공개번호", "KR", "publication", "A"),
    ("등록번호", "KR", "publication", "B"),
)
_NATIVE_TAIL = re.compile(r"[号號호]$")
_BARE_KR = re.compile(r"[1-4]0-?(?:19|20)[0-9]{2}-?[0-9]{7}", re.ASCII)
_ST13_PCT = re.compile(r"(?:WO|IB) ?((?:19|20)[0-9]{2}) ?([A-Z]{2}) ?([0-9]{1,6})", re.ASCII)

# one character for one character, so that positions in a post stay where they were
_FOLD = str.maketrans(
    {**{chr(0xFF01 + i): chr(0x21 + i) for i in range(0x5E)},
     "\u3000": " ", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
     "\u2014": "-", "\u2015": "-", "\u2212": "-", "\u30fc": "-"}
)


def fold(text: str) -> str:
    """Full-width letters, digits and punctuation and the many dashes as ASCII,
    one character for one (unlike NFKC), so spans found in the result fit ``text``."""
    return text.translate(_FOLD)


@dataclass(frozen=True)
class NumberReading:
    """What a typed number can be: an application, a publication, or both (the
    same digits are often both, as JP ``2017-187096``).  Lookups try each."""

    text: str
    application: AppNumber | None = None
    publication: PubNumber | None = None

    @property
    def best(self) -> AppNumber | PubNumber:
        """The one a post reference keeps: the application when it can be one."""
        found = self.application or self.publication
        assert found is not None  # read_number never returns an empty reading
        return found


def _native(clean: str) -> tuple[str, str, str | None, str] | None:
    """(office, what, kind code, rest) for a native prefix, else None."""
    for prefix, office, what, kind in _NATIVE_PREFIXES:
        if clean.startswith(prefix):
            rest = clean[len(prefix):].lstrip(" :：.")
            rest = _NATIVE_TAIL.sub("", rest).strip()
            return office, what, kind, rest
    return None


def read_number(
    text: str,
    *,
    office: str | None = None,
    known_offices: Collection[str] = KNOWN_OFFICES,
) -> NumberReading:
    """Read ``text`` as an application and/or publication number.

    Raises :class:`NumberError` (with the message of the most telling failure)
    when it is neither.
    """
    clean = _clean(fold(text))
    native = _native(clean)
    if native is not None:
        code, what, kind, rest = native
        if office is not None and _clean(office) != code:
            raise NumberError(
                f"{text!r} is {_a(code)} number but the office given is {_clean(office)}: "
                "remove the prefix or choose the right office")
        if not rest:
            raise NumberError(f"{text!r} has no number after its prefix")
        known = {*known_offices, code}
        if what == "application":
            return NumberReading(text, application=parse_application_number(
                rest, office=code, known_offices=known))
        native_pub = parse_publication_number(rest, office=code, known_offices=known)
        if native_pub.kind_code is None and kind is not None:
            native_pub = PubNumber(native_pub.office, native_pub.number, kind)
        return NumberReading(text, publication=native_pub)
    st13 = _ST13_PCT.fullmatch(clean)
    if st13 is not None:
        year, receiving, serial = st13.groups()
        return NumberReading(text, application=parse_application_number(
            f"PCT/{receiving}{year}/{serial}", known_offices=known_offices))
    if office is None and _BARE_KR.fullmatch(clean):
        office = "KR"
    app: AppNumber | None = None
    pub: PubNumber | None = None
    problems: list[NumberError] = []
    folded = fold(text)
    try:
        app = parse_application_number(folded, office=office, known_offices=known_offices)
    except NumberError as exc:
        problems.append(exc)
    try:
        pub = parse_publication_number(folded, office=office, known_offices=known_offices)
    except NumberError as exc:
        problems.append(exc)
    if app is None and pub is None:
        raise problems[0]
    return NumberReading(text, application=app, publication=pub)


_NUMBER_LIKE = re.compile(
    r"(?:PCT[\s/]*[A-Z]{2}|[A-Z]{2})?[\s:/-]*[0-9][0-9\s,./-]*(?:[A-Z][0-9]?)?", re.ASCII)


def looks_like_number(text: str) -> bool:
    """Whether ``text`` is meant as a number (even a mistyped one), not as words:
    the header box sends words to the search page, numbers to the number box."""
    clean = _clean(fold(text))
    return _native(clean) is not None or _NUMBER_LIKE.fullmatch(clean) is not None


def parse_any_number(text: str) -> AppNumber | PubNumber:
    """The reference patterns' ``parse``: :func:`read_number`'s preferred reading."""
    return read_number(text).best


# --- finding numbers in free text --------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A number found in free text, with where it was found."""

    start: int
    end: int
    text: str
    number: AppNumber | PubNumber
    pattern: str

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end

    @property
    def is_application(self) -> bool:
        return isinstance(self.number, AppNumber)


@dataclass(frozen=True)
class ReferencePattern:
    """One way of writing a number: a regex proposes, ``parse`` decides.

    Matches that ``parse`` rejects with a ``ValueError`` are skipped, so a
    pattern may be a little generous.  A ``str`` regex is compiled for you.
    """

    name: str
    regex: re.Pattern[str]
    parse: Callable[[str], AppNumber | PubNumber]

    def __post_init__(self) -> None:
        if isinstance(self.regex, str):
            object.__setattr__(self, "regex", re.compile(self.regex))


# Office codes must stand alone (not end a word) and the number must not run on
# into more digits, letters or a decimal part.
_LEFT = r"(?<![A-Za-z0-9])"
_RIGHT = r"(?![A-Za-z0-9]|[.,/-][0-9])"


def _pattern(
    name: str, body: str, parse: Callable[[str], AppNumber | PubNumber]
) -> ReferencePattern:
    """Compile ``body`` so that a space in it also accepts a no-break space."""
    body = body.replace(" ", "[ \u00a0]")
    return ReferencePattern(name, re.compile(_LEFT + body + _RIGHT, re.ASCII), parse)


def _coded_publication_pattern() -> str:
    offices = "|".join(sorted(KNOWN_OFFICES - {"IB"}))
    return rf"(?:{offices})\d{{6,12}}[A-Z]\d?"


#: The built-in patterns, upper-case office codes only so that the English
#: word "us" never fires.  Heuristics: ``US`` + 8 bare digits is taken as an
#: application (``US 10,123,456`` with commas, or with a kind code, is a patent);
#: ``JP2017-187096`` is an application unless a kind code follows it.
DEFAULT_PATTERNS: tuple[ReferencePattern, ...] = (
    _pattern(
        "pct_application",
        r"PCT ?/ ?[A-Z]{2} ?(?:\d{4}|\d{2}) ?/ ?\d{1,6}",
        parse_application_number,
    ),
    _pattern(
        "wo_publication",
        r"WO ?(?:(?:19|20)\d{2} ?/ ?\d{6}|(?:19|20)\d{8}|\d{2} ?/ ?\d{5})(?: ?A\d)?",
        parse_publication_number,
    ),
    _pattern(
        "us_application",
        r"US ?(?:\d{2}/\d{3},?\d{3}|\d{8}|\d{2} \d{3} \d{3})",
        parse_application_number,
    ),
    _pattern(
        "us_pregrant_publication",
        r"US ?(?:19|20)\d{2}(?: ?[/-] ?)?\d{7}(?: ?A\d)?",
        parse_publication_number,
    ),
    _pattern(
        "us_patent",
        r"US ?(?:\d{1,2},\d{3},\d{3}(?: ?[BES]\d?)?|\d{7,8} ?B\d|\d{7})",
        parse_publication_number,
    ),
    _pattern(
        "ep_publication",
        r"EP ?(?:\d{7}|\d \d{3} \d{3})(?: ?[AB]\d)?",
        parse_publication_number,
    ),
    _pattern(
        "ep_application",
        r"EP ?\d{2} ?\d{3} ?\d{3}(?:\.\d)?",
        parse_application_number,
    ),
    _pattern(
        "jp_application",
        r"JP ?(?:19|20)\d{2}(?:[-/]| )?\d{6}",
        parse_application_number,
    ),
    _pattern(
        "jp_publication",
        r"JP ?(?:(?:19|20)\d{2}-?\d{6}|\d{7}) ?[AB]\d?",
        parse_publication_number,
    ),
    _pattern(
        "cn_application",
        r"CN ?(?:(?:19|20)\d{2} ?\d{4} ?\d{4}(?:\.[\dX])?|\d{8}\.[\dX])",
        parse_application_number,
    ),
    _pattern(
        "cn_publication",
        r"CN ?(?:\d{9}|\d{7})(?: ?[ABCUSY]\d?)?",
        parse_publication_number,
    ),
    _pattern(
        "kr_application",
        r"KR ?[1-4]0-?(?:19|20)\d{2}-?\d{7}",
        parse_application_number,
    ),
    _pattern(
        "kr_bare_application",
        r"(?:(?:특허출원번호|출원번호|특허출원) ?:? ?)?[1-4]0-(?:19|20)\d{2}-\d{7}",
        parse_any_number,
    ),
    _pattern(
        "jp_native",
        r"(?:特許出願|特願|実願|特開|特表|特公) ?(?:19|20)\d{2} ?-? ?\d{6}"
        r"|特許第? ?\d{7} ?号?",
        parse_any_number,
    ),
    _pattern(
        "cn_native",
        r"(?:专利申请号|專利申請號|申请号|申請號) ?:? ?(?:CN ?)?(?:19|20)\d{10}(?:\.[\dX])?"
        r"|(?:公开号|公布号|授权公告号|公告号) ?:? ?(?:CN ?)?\d{9}(?: ?[ABCUY]\d?)?",
        parse_any_number,
    ),
    _pattern(
        "pct_st13",
        r"(?:WO|IB) ?(?:19|20)\d{2} ?[A-Z]{2} ?\d{6}",
        parse_any_number,
    ),
    _pattern(
        "coded_publication",
        _coded_publication_pattern(),
        parse_publication_number,
    ),
)


def find_references(
    text: str, patterns: Iterable[ReferencePattern] = DEFAULT_PATTERNS
) -> list[Reference]:
    """Every number mentioned in ``text``, in order, without overlaps.

    Where matches overlap, the one starting first wins, then the longer one
    (so ``JP2017-187096 A`` is a publication, not an application plus an
    ``A``), then the earlier pattern.
    """
    candidates: list[tuple[int, int, int, Reference]] = []
    folded = fold(text)  # full-width digits and dashes match too; spans stay the same
    for order, pattern in enumerate(patterns):
        for m in pattern.regex.finditer(folded):
            if m.end() == m.start():
                continue
            try:
                number = pattern.parse(m.group())
            except ValueError:
                continue
            ref = Reference(m.start(), m.end(), text[m.start():m.end()], number, pattern.name)
            candidates.append((m.start(), m.start() - m.end(), order, ref))
    candidates.sort(key=lambda c: c[:3])
    found: list[Reference] = []
    for *_, ref in candidates:
        if not found or ref.start >= found[-1].end:
            found.append(ref)
    return found
