"""Demo dossiers: invented but plausible patent families for ``caseforum demo``.

Everything goes through the same data functions as an upload
(:func:`service.upsert_dossier`, :func:`service.add_document`,
:func:`service.add_citation`), so the demo also exercises validation, family
linking, text extraction and the event log exactly as real traffic does.

The families, applicants and texts are made up; the numbers only follow each
office's layout.  The one exception is the scanned page in ``demo_assets/``:
a real, public USPTO issue notification (a raster image without text layer,
of another application), filed here as scanned correspondence so that the
comparison view has a scan to show side by side.

PDFs are generated in memory with fpdf2's core fonts (Latin-1 only), so the
English texts stand in for translations of Japanese, Chinese and Korean
originals; two short originals in Japanese and Korean are plain UTF-8 text.
Generation is deterministic (fixed creation date), and every record is
looked up before it is added, so loading twice adds nothing the second time.
"""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from caseforum.db import open_session
from caseforum.doccodes import DocTypeRegistry
from caseforum.dossiers import service
from caseforum.dossiers.schemas import CitationIn, DossierIn, PriorityIn
from caseforum.models import Application, Citation, Document
from caseforum.numbers import parse_application_number
from caseforum.storage import StoredFile, safe_filename
from caseforum.storage_backends import StorageBackend

if TYPE_CHECKING:
    from fpdf import FPDF

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "demo_assets"
SCAN_ASSET = "us-issue-notification-scan.pdf"
MAX_BYTES = 20 * 1024 * 1024
#: A fixed creation date keeps the generated PDFs byte-identical between runs.
PDF_DATE = datetime(2024, 1, 1, tzinfo=UTC)

OFFICE_NAMES = {
    "AU": "IP Australia",
    "CN": "China National Intellectual Property Administration",
    "GB": "UK Intellectual Property Office",
    "IB": "International Bureau of WIPO / International Searching Authority",
    "JP": "Japan Patent Office",
    "KR": "Korean Intellectual Property Office",
    "US": "United States Patent and Trademark Office",
}
LANGUAGE_NAMES = {"ja": "Japanese", "zh": "Chinese", "ko": "Korean"}


@dataclass(frozen=True)
class DemoDoc:
    """One document; ``translated_from`` marks an English translation, ``original``
    names (by ``name``) the document of the same dossier it translates, listed before it."""

    name: str  # download name, unique within its dossier (the idempotency key)
    code: str
    date: str
    heading: str
    body: str
    fmt: str = "pdf"  # pdf | text | scan
    language: str = "en"
    translated_from: str | None = None
    visibility: str = "offices"
    offices: tuple[str, ...] = ()
    original: str | None = None


@dataclass(frozen=True)
class DemoCite:
    cited: str
    category: str
    claims: str
    phase: str
    doc: str | None = None  # name of the citing document in the same dossier


@dataclass(frozen=True)
class DemoDossier:
    office: str
    number: str
    filing_date: str
    publication_number: str
    publication_date: str
    title: str
    applicants: tuple[str, ...]
    ipc: tuple[str, ...]
    cpc: tuple[str, ...] = ()
    priorities: tuple[tuple[str, str, str], ...] = ()
    pct: str | None = None
    docs: tuple[DemoDoc, ...] = ()
    cites: tuple[DemoCite, ...] = ()

    def data(self) -> DossierIn:
        return DossierIn(
            office=self.office, application_number=self.number,
            filing_date=date.fromisoformat(self.filing_date),
            publication_number=self.publication_number,
            publication_date=date.fromisoformat(self.publication_date), title=self.title,
            applicants=list(self.applicants), ipc=list(self.ipc), cpc=list(self.cpc),
            priorities=[PriorityIn(office=o, number=n, date=date.fromisoformat(d))
                        for o, n, d in self.priorities],
            pct_application_number=self.pct)


# Texts ---------------------------------------------------------------------------------


def numbered(claims: Iterable[str]) -> str:
    return "\n".join(f"{i}. {text}" for i, text in enumerate(claims, 1))


def us_amendment(claims: list[str], changes: dict[int, str | None]) -> str:
    """A US claim listing: every claim with its status, as 37 CFR 1.121 asks."""
    lines = []
    for i, text in enumerate(claims, 1):
        if i in changes and changes[i] is None:
            lines.append(f"{i}. (Cancelled)")
        elif i in changes:
            lines.append(f"{i}. (Currently amended) {changes[i]}")
        else:
            lines.append(f"{i}. (Original) {text}")
    return "\n".join(lines)


def search_table(rows: Iterable[tuple[str, str, str]]) -> str:
    table = ["Category  Citation  Relevant to claim No."]
    table += [f"{cat}  {cited}  {claims}" for cat, cited, claims in rows]
    legend = ("Categories (WIPO ST.14): X particularly relevant alone; Y relevant in "
              "combination; A general state of the art; P intermediate document.")
    return "\n".join(table) + "\n\n" + legend


# Family 1: JP priority, PCT via IB, national phases in US, CN, KR, AU and GB ----------

F1_TITLE = "Sulfide solid electrolyte, electrode mixture and all-solid-state battery"
F1_APPLICANTS = ("Kaneshiro Materials Co., Ltd.",)
F1_IPC = ("H01M 10/0562", "H01B 1/10", "C01B 25/14")
F1_CPC = ("H01M 10/0562", "H01M 2300/008", "C01B 25/14")
F1_PRIORITY = ("JP", "2019-041872", "2019-03-07")
F1_PCT = "PCT/JP2020/009517"

F1_CLAIMS = [
    "A sulfide solid electrolyte comprising lithium, phosphorus, sulfur and a halogen, "
    "and having an argyrodite-type crystal structure, wherein the molar ratio of the "
    "halogen to phosphorus (X/P) is from 1.0 to 2.0.",
    "The sulfide solid electrolyte according to claim 1, wherein the halogen comprises "
    "chlorine and bromine.",
    "The sulfide solid electrolyte according to claim 2, wherein the molar ratio of bromine "
    "to the total halogen, Br/(Cl+Br), is from 0.1 to 0.5.",
    "The sulfide solid electrolyte according to any one of claims 1 to 3, having a lithium "
    "ion conductivity at 25 degrees C of 5 mS/cm or more.",
    "The sulfide solid electrolyte according to any one of claims 1 to 4, in the form of "
    "particles having a median diameter D50 of about 0.5 to 10 micrometres.",
    "An electrode mixture comprising the sulfide solid electrolyte according to any one of "
    "claims 1 to 5 and an electrode active material.",
    "An all-solid-state lithium ion battery comprising a positive electrode layer, a "
    "negative electrode layer and a solid electrolyte layer, at least one of which contains "
    "the sulfide solid electrolyte according to any one of claims 1 to 5.",
    "A method for producing the sulfide solid electrolyte according to any one of claims 1 "
    "to 5, comprising mixing lithium sulfide, diphosphorus pentasulfide, lithium chloride "
    "and lithium bromide, and heat-treating the mixture at 350 to 500 degrees C.",
]
F1_CLAIM1_NARROW = (
    "A sulfide solid electrolyte comprising lithium, phosphorus, sulfur and a halogen, "
    "and having an argyrodite-type crystal structure, wherein the halogen comprises "
    "chlorine and bromine, the molar ratio of the halogen to phosphorus (X/P) is from 1.2 "
    "to 1.8, and the molar ratio of bromine to the total halogen, Br/(Cl+Br), is from 0.1 "
    "to 0.5."
)
F1_JP_ALLOWED = [F1_CLAIM1_NARROW] + [
    c.replace("claims 1 to 5", "claims 1 to 3").replace("claims 1 to 4", "claims 1 or 2")
    for c in (F1_CLAIMS[3], F1_CLAIMS[4], F1_CLAIMS[5], F1_CLAIMS[6], F1_CLAIMS[7])
]
F1_PRIOR_ART = {
    "D1": "JP 2016-207528 A",
    "D2": "WO 2018/047044 A1",
    "D3": "US 2017/0222257 A1",
    "D4": "WO 2019/176895 A1",
    "NPL": ("H.-J. Deiseroth et al., Li6PS5X: a class of crystalline Li-rich solids with an "
            "unusually high Li+ mobility, Angew. Chem. Int. Ed. 47 (2008) 755-758"),
}

F1_JP_CLAIMS_JA = "\n".join((
    "【書類名】特許請求の範囲",
    "【請求項1】",
    "リチウム、リン、硫黄及びハロゲンを含み、アルジロダイト型結晶構造を有する"
    "硫化物固体電解質であって、リンに対するハロゲンのモル比（X/P）が1.0以上2.0以下"
    "である、硫化物固体電解質。",
    "【請求項2】",
    "前記ハロゲンが塩素及び臭素を含む、請求項1に記載の硫化物固体電解質。",
    "【請求項3】",
    "塩素及び臭素の合計に対する臭素のモル比（Br/(Cl+Br)）が0.1以上0.5以下である、"
    "請求項2に記載の硫化物固体電解質。",
))


def _family_sulfide() -> list[DemoDossier]:
    a = F1_PRIOR_ART
    jp = DemoDossier(
        office="JP", number="2019-041872", filing_date="2019-03-07",
        publication_number="JP 2020-149862 A", publication_date="2020-09-17",
        title=F1_TITLE, applicants=F1_APPLICANTS, ipc=F1_IPC, cpc=F1_CPC,
        docs=(
            DemoDoc("claims-ja.txt", "CLM", "2019-03-07", "Claims (original)",
                    F1_JP_CLAIMS_JA, fmt="text", language="ja"),
            DemoDoc("claims-en.pdf", "CLM", "2019-03-07", "Claims as filed",
                    numbered(F1_CLAIMS), translated_from="ja", original="claims-ja.txt"),
            DemoDoc("search-report.pdf", "SRPT", "2020-10-20",
                    "Search report by a registered searching organization",
                    "Searched fields: H01M 10/0562, H01B 1/06-1/10, C01B 25/14\n"
                    "Databases: JPlatPat, J-GLOBAL, CAplus (lithium argyrodite halogen)\n\n"
                    + search_table([("X", a["D1"], "1, 2, 6, 7"), ("Y", a["D2"], "3-5, 8"),
                                    ("A", a["D3"], "1-8")]),
                    translated_from="ja", visibility="restricted", offices=("CN", "KR")),
            DemoDoc("reasons-for-refusal.pdf", "CTNF", "2020-11-10",
                    "Notice of reasons for refusal",
                    "This application is to be refused for the following reasons. Any "
                    "written opinion should be submitted within 60 days of the date of "
                    "dispatch of this notice.\n\n"
                    "Reason 1 (novelty, Article 29(1)(iii)): claims 1, 2, 6 and 7.\n"
                    f"Cited document 1 ({a['D1']}) discloses in Example 3 an argyrodite "
                    "Li6PS5Cl0.5Br0.5 electrolyte; its halogen to phosphorus ratio is 1.0 and "
                    "falls within the claimed range.\n\n"
                    "Reason 2 (inventive step, Article 29(2)): claims 3 to 5 and 8.\n"
                    f"Cited document 2 ({a['D2']}) teaches increasing the halogen content "
                    "of Li6PS5X to raise conductivity; adjusting the bromine share and the "
                    "particle size is ordinary work for a person skilled in the art.\n\n"
                    "Cited documents:\n"
                    f"1. {a['D1']}\n2. {a['D2']}\n3. {a['D3']} (general state of the art)",
                    translated_from="ja"),
            DemoDoc("amended-claims.pdf", "AMND", "2021-01-12", "Amendment of claims",
                    numbered(F1_JP_ALLOWED), translated_from="ja"),
            DemoDoc("written-opinion.pdf", "REM", "2021-01-12", "Written opinion",
                    "Claim 1 now requires chlorine and bromine together, an X/P ratio of 1.2 "
                    "to 1.8 and a bromine share of 0.1 to 0.5 (basis: original claims 2 and 3, "
                    "paragraph [0031]). Cited document 1 discloses a ratio of exactly 1.0 and "
                    "does not suggest the narrower window; Table 2 of the description shows "
                    "that conductivity peaks inside it (7.9 mS/cm at X/P = 1.6) and drops "
                    "outside it. The reasons for refusal have been overcome.",
                    translated_from="ja"),
            DemoDoc("decision-to-grant.pdf", "NOA", "2021-03-02", "Decision to grant a patent",
                    "No reason for refusal has been found in this application. "
                    "Claims 1 to 6 as amended on 2021-01-12 are allowed.\n\n"
                    "Patent number: JP 6871412 B2",
                    translated_from="ja", visibility="public"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "search", "search-report.pdf"),
            DemoCite(a["D2"], "Y", "3-5, 8", "search", "search-report.pdf"),
            DemoCite(a["D3"], "A", "1-8", "search", "search-report.pdf"),
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "examination", "reasons-for-refusal.pdf"),
            DemoCite(a["D2"], "Y", "3-5, 8", "examination", "reasons-for-refusal.pdf"),
        ),
    )
    ib = DemoDossier(
        office="IB", number=F1_PCT, filing_date="2020-03-05",
        publication_number="WO 2020/179934 A1", publication_date="2020-09-10",
        title=F1_TITLE, applicants=F1_APPLICANTS, ipc=F1_IPC, cpc=F1_CPC,
        priorities=(F1_PRIORITY,),
        docs=(
            DemoDoc("claims-en.pdf", "CLM", "2020-03-05", "Claims (international application)",
                    numbered(F1_CLAIMS), translated_from="ja", visibility="public"),
            DemoDoc("isr.pdf", "ISR", "2020-05-19", "International search report",
                    "International Searching Authority: Japan Patent Office\n"
                    "A. Classification: H01M 10/0562 (2010.01)i; H01B 1/10 (2006.01)i\n"
                    "B. Fields searched: H01M 10/05-10/0587; H01B 1/06-1/10; C01B 25/14\n"
                    "C. Documents considered to be relevant:\n"
                    + search_table([("X", a["D1"], "1, 2, 6, 7"), ("Y", a["D2"], "3-5, 8"),
                                    ("P,A", a["D4"], "1-8"), ("A", a["NPL"], "1-8")])
                    + "\n\nDate of the actual completion of the international search: "
                      "2020-05-08",
                    visibility="public"),
            DemoDoc("written-opinion-isa.pdf", "WOISA", "2020-05-19",
                    "Written opinion of the International Searching Authority",
                    "Box V. Reasoned statement with regard to novelty, inventive step and "
                    "industrial applicability.\n"
                    "Novelty: claims 3-5, 8 YES; claims 1, 2, 6, 7 NO.\n"
                    "Inventive step: claims NONE YES; claims 1-8 NO.\n"
                    "Industrial applicability: claims 1-8 YES.\n\n"
                    f"D1 ({a['D1']}) anticipates claim 1: Example 3 has X/P = 1.0. "
                    f"Claims 3 to 5 and 8 lack an inventive step over D1 combined with D2 "
                    f"({a['D2']}), which teaches halogen-rich argyrodites for higher "
                    "conductivity.",
                    visibility="public"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "international search", "isr.pdf"),
            DemoCite(a["D2"], "Y", "3-5, 8", "international search", "isr.pdf"),
            DemoCite(a["D4"], "P,A", "1-8", "international search", "isr.pdf"),
            DemoCite(a["NPL"], "A", "1-8", "international search", "isr.pdf"),
        ),
    )
    national: dict[str, Any] = {
        "filing_date": "2020-03-05", "title": F1_TITLE, "applicants": F1_APPLICANTS,
        "ipc": F1_IPC, "cpc": F1_CPC, "priorities": (F1_PRIORITY,), "pct": F1_PCT}
    us_changes: dict[int, str | None] = {
        1: F1_CLAIM1_NARROW,
        2: None,
        3: None,
        5: F1_CLAIMS[4].replace("any one of claims 1 to 4", "claim 1 or 4")
                       .replace("about 0.5 to 10", "0.5 to 3.0"),
        8: F1_CLAIMS[7].replace("350 to 500 degrees C",
                                "400 to 480 degrees C under an argon atmosphere"),
    }
    us = DemoDossier(
        office="US", number="17/436,205", publication_number="US 2022/0173429 A1",
        publication_date="2022-06-02", **national,
        docs=(
            DemoDoc("claims.pdf", "CLM", "2021-09-03", "Claims (national stage, 35 U.S.C. 371)",
                    numbered(F1_CLAIMS)),
            DemoDoc("search-strategy.txt", "SRNT", "2023-02-14",
                    "Examiner's search strategy and results",
                    "L1  4821  (argyrodite or Li6PS5) same (sulfide adj electrolyte)\n"
                    "L2   612  L1 and (chlorine or chloride) and (bromine or bromide)\n"
                    "L3    97  L2 and (ratio near5 (halogen or Br or Cl))\n"
                    "L4    14  L3 and @pd<\"20190307\"\n"
                    "Databases: US-PGPUB; USPAT; USOCR; FPRS; EPO; JPO; DERWENT\n"
                    "Classification searched: H01M 10/0562; H01B 1/10; C01B 25/14",
                    fmt="text"),
            DemoDoc("non-final-rejection.pdf", "CTNF", "2023-02-14", "Non-final office action",
                    "Claims 1-8 are pending. Claims 1-8 are rejected.\n\n"
                    "Claim Rejections - 35 USC 102\n"
                    f"Claims 1, 2, 6 and 7 are rejected under 35 U.S.C. 102(a)(1) as being "
                    f"anticipated by Tsuda ({a['D1']}). Tsuda teaches Li6PS5Cl0.5Br0.5 with an "
                    "argyrodite structure (Example 3), i.e. X/P = 1.0.\n\n"
                    "Claim Rejections - 35 USC 103\n"
                    f"Claims 3-5 and 8 are rejected under 35 U.S.C. 103 as being unpatentable "
                    f"over Tsuda in view of Lin ({a['D2']}) and Park ({a['D3']}). Lin teaches "
                    "raising the halogen content above the stoichiometric value; optimising a "
                    "result-effective variable is prima facie obvious (In re Aller).\n\n"
                    "Any inquiry concerning this communication should be directed to the "
                    "examiner of record, Art Unit 1727.",),
            DemoDoc("amendment.pdf", "AMND", "2023-05-10", "Amendment and listing of claims",
                    us_amendment(F1_CLAIMS, us_changes)),
            DemoDoc("remarks.pdf", "REM", "2023-05-10", "Applicant arguments / remarks",
                    "Claims 1, 4-8 are pending after this amendment; claims 2 and 3 are "
                    "cancelled without prejudice. Support for amended claim 1 is found in "
                    "original claims 2 and 3 and in paragraph [0031].\n\n"
                    "Tsuda discloses only X/P = 1.0 and does not teach the combined window. "
                    "The data in Table 2 show an unexpected conductivity maximum (7.9 mS/cm) "
                    "inside the claimed ranges. The same claims were found allowable by the "
                    "Japan Patent Office (JP 6871412 B2) and by CNIPA.\n\n"
                    "Reconsideration and withdrawal of the rejections are requested."),
            DemoDoc("notice-of-allowance.pdf", "NOA", "2023-09-27",
                    "Notice of allowance and fee(s) due",
                    "Claims 1 and 4-8 are allowed (renumbered 1-6).\n\n"
                    "Reasons for allowance: the prior art of record, alone or in combination, "
                    "does not teach or suggest an argyrodite sulfide electrolyte containing "
                    "chlorine and bromine with X/P of 1.2 to 1.8 together with Br/(Cl+Br) of "
                    "0.1 to 0.5, and the applicant has shown unexpected results across that "
                    "window."),
            DemoDoc("scanned-correspondence.pdf", "OTHER", "2023-10-24",
                    "Scanned correspondence", "", fmt="scan"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "examination", "non-final-rejection.pdf"),
            DemoCite(a["D2"], "Y", "3-5, 8", "examination", "non-final-rejection.pdf"),
            DemoCite(a["D3"], "Y", "3-5, 8", "examination", "non-final-rejection.pdf"),
        ),
    )
    cn_claims = [F1_CLAIM1_NARROW] + F1_JP_ALLOWED[1:]
    cn = DemoDossier(
        office="CN", number="202080019375.4", publication_number="CN 113543158 A",
        publication_date="2021-10-22", **national,
        docs=(
            DemoDoc("search-report.pdf", "SRPT", "2022-03-18", "Search report",
                    "Classification: H01M 10/0562 (2010.01) I\n"
                    "Databases: CNABS, CNTXT, VEN, CNKI\n\n"
                    + search_table([("X", a["D1"], "1, 2, 6, 7"),
                                    ("Y", "CN 108878962 A", "3-5"),
                                    ("A", a["D2"], "1-8")]),
                    translated_from="zh"),
            DemoDoc("first-office-action.pdf", "CTNF", "2022-03-18",
                    "First office action",
                    "1. Claim 1 lacks novelty under Article 22(2) of the Patent Law over "
                    f"D1 ({a['D1']}), which discloses an argyrodite electrolyte with "
                    "X/P = 1.0.\n"
                    "2. Claims 3-5 lack an inventive step under Article 22(3) over D1 in view "
                    "of D2 (CN 108878962 A), which teaches mixed Cl/Br argyrodites.\n"
                    "3. The applicant is invited to amend the claims within four months.",
                    translated_from="zh"),
            DemoDoc("amended-claims.pdf", "AMND", "2022-07-29", "Replacement claims",
                    numbered(cn_claims), translated_from="zh"),
            DemoDoc("notification-of-grant.pdf", "NOA", "2022-11-08",
                    "Notification to grant patent right",
                    "The application meets the requirements of the Patent Law. The patent "
                    "right will be granted on the basis of the claims submitted on "
                    "2022-07-29 (claims 1-6).", translated_from="zh", visibility="public"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "search", "search-report.pdf"),
            DemoCite("CN 108878962 A", "Y", "3-5", "search", "search-report.pdf"),
            DemoCite(a["D2"], "A", "1-8", "search", "search-report.pdf"),
        ),
    )
    kr = DemoDossier(
        office="KR", number="10-2021-7028846", publication_number="KR 10-2021-0129113 A",
        publication_date="2021-10-27", **national,
        docs=(
            DemoDoc("pph-request.pdf", "PPH", "2021-11-15",
                    "Request for accelerated examination under the PPH",
                    "Office of earlier examination: Japan Patent Office (JP 2019-041872, "
                    "decision to grant of 2021-03-02).\n"
                    "Claim correspondence table: KR claims 1-6 correspond to JP claims 1-6 "
                    "as allowed; KR claim 1 is identical to JP claim 1.\n"
                    "Documents attached: copy of the JP allowed claims, JP office actions "
                    "and the cited references.",
                    translated_from="ko", visibility="restricted", offices=("JP",)),
            DemoDoc("preliminary-rejection.pdf", "CTNF", "2022-01-20",
                    "Notice of preliminary rejection",
                    "Claims 1 to 8 cannot be patented for the following reasons.\n"
                    f"[Novelty] Claim 1 is disclosed by cited invention 1 ({a['D1']}).\n"
                    f"[Inventive step] Claims 2 to 8 could easily be made by a person "
                    f"skilled in the art from cited invention 1 combined with cited "
                    f"invention 2 (KR 10-2018-0076132 A).\n"
                    "Note: amending the claims to those allowed in JP 2019-041872 is "
                    "expected to overcome these reasons.",
                    translated_from="ko"),
            DemoDoc("amendment.pdf", "AMND", "2022-03-21", "Written amendment",
                    numbered(F1_JP_ALLOWED), translated_from="ko"),
            DemoDoc("decision-to-grant.pdf", "NOA", "2022-06-09", "Decision to grant",
                    "The application is granted with claims 1 to 6 as amended on 2022-03-21.",
                    translated_from="ko"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1", "examination", "preliminary-rejection.pdf"),
            DemoCite("KR 10-2018-0076132 A", "Y", "2-8", "examination",
                     "preliminary-rejection.pdf"),
        ),
    )
    au = DemoDossier(
        office="AU", number="2020231647", publication_number="AU 2020231647 A1",
        publication_date="2021-09-30", **national,
        docs=(
            DemoDoc("examination-report-1.txt", "EXRP", "2022-05-24",
                    "Examination report No. 1 for your standard patent application",
                    "1. Novelty: claims 1, 2, 6 and 7 are not novel in light of D1 "
                    f"({a['D1']}).\n"
                    "2. Inventive step: claims 3-5 and 8 do not involve an inventive step "
                    f"in light of D1 combined with D2 ({a['D2']}) and common general "
                    "knowledge.\n"
                    "3. The applicant may wish to consider the claims accepted in JP and CN.\n"
                    "You have until 2023-05-24 to put the application in order for "
                    "acceptance.", fmt="text"),
            DemoDoc("notice-of-acceptance.pdf", "NOA", "2022-11-02", "Notice of acceptance",
                    "The application has been accepted. Acceptance will be advertised in the "
                    "Australian Official Journal of Patents; opposition is possible for "
                    "three months.", visibility="public"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1, 2, 6, 7", "examination", "examination-report-1.txt"),
            DemoCite(a["D2"], "Y", "3-5, 8", "examination", "examination-report-1.txt"),
        ),
    )
    gb = DemoDossier(
        office="GB", number="2113871.2", publication_number="GB 2596240 A",
        publication_date="2021-12-22", **national,
        docs=(
            DemoDoc("examination-report.txt", "EXRP", "2022-08-16",
                    "Examination report under section 18(3)",
                    "Novelty: claim 1 is not new in view of D1 (JP 2016-207528 A), which was "
                    "also cited by the ISA.\n"
                    "Inventive step: the ranges of claims 3 and 5 are an arbitrary selection "
                    "unless a technical effect across them is shown.\n"
                    "The compliance period ends on 2025-03-05.", fmt="text"),
        ),
        cites=(
            DemoCite(a["D1"], "X", "1", "examination", "examination-report.txt"),
        ),
    )
    return [jp, ib, us, cn, kr, au, gb]


# Family 2: CN first filing, US with priority (no EP route) ---------------------------

F2_TITLE = "Vehicle positioning method and device based on lane-line map matching"
F2_CLAIMS = [
    "A vehicle positioning method, comprising: acquiring an image of the road ahead of a "
    "vehicle by a camera; detecting lane lines in the image; obtaining an initial position "
    "of the vehicle from a satellite positioning receiver; retrieving lane-line data of a "
    "high-definition map within a predetermined range around the initial position; "
    "matching the detected lane lines with the lane-line data; and correcting the initial "
    "position according to the matching result.",
    "The method of claim 1, wherein the matching comprises projecting the map lane lines "
    "into the image coordinate system using the intrinsic and extrinsic parameters of the "
    "camera and computing a lateral offset between projected and detected lane lines.",
    "The method of claim 2, wherein the correcting comprises fusing the lateral offset with "
    "inertial measurement data in a Kalman filter.",
    "The method of any one of claims 1 to 3, wherein the predetermined range is 50 to 200 "
    "metres.",
    "The method of any one of claims 1 to 4, further comprising keeping the initial "
    "position when a matching confidence is below a threshold.",
    "A vehicle positioning device, comprising a processor and a memory storing instructions "
    "which, when executed by the processor, perform the method of any one of claims 1 to 5.",
    "A non-transitory computer-readable storage medium storing a program which, when "
    "executed by a computer, performs the method of any one of claims 1 to 5.",
]
F2_CLAIM1_US = F2_CLAIMS[0].replace(
    "matching the detected lane lines with the lane-line data;",
    "classifying each detected lane line as solid or dashed; matching the detected lane "
    "lines with the lane-line data using the line type and the phase of the dash pattern "
    "to determine a longitudinal offset;")
F2_CLAIM1_CN = F2_CLAIMS[0].replace(
    "and correcting the initial position according to the matching result.",
    "and correcting the initial position according to the matching result, wherein the "
    "matching comprises projecting the map lane lines into the image coordinate system and "
    "computing a lateral offset.")
F2_NPL = ("M. Schreiber et al., LaneLoc: lane marking based localization using highly "
          "accurate maps, IEEE Intelligent Vehicles Symposium (2013) 449-454")


def _family_lanes() -> list[DemoDossier]:
    common: dict[str, Any] = {"title": F2_TITLE,
              "applicants": ("Hangzhou Lianxin Intelligent Technology Co., Ltd.",),
              "ipc": ("G01C 21/30", "G06V 20/56", "G01S 19/48"),
              "cpc": ("G01C 21/30", "G06V 20/588")}
    cn = DemoDossier(
        office="CN", number="201910738254.X", filing_date="2019-08-12",
        publication_number="CN 110440792 A", publication_date="2019-11-12",
        **common,
        docs=(
            DemoDoc("claims.pdf", "CLM", "2019-08-12", "Claims", numbered(F2_CLAIMS),
                    translated_from="zh"),
            DemoDoc("search-report.pdf", "SRPT", "2020-04-16", "Search report",
                    "Databases: CNABS, CNTXT, DWPI, SIPOABS, IEEE Xplore\n"
                    "Keywords: lane line, high-definition map, matching, positioning, Kalman\n\n"
                    + search_table([("X", "CN 108303103 A", "1, 2, 6, 7"),
                                    ("Y", "US 2018/0067966 A1", "3-5"),
                                    ("A", F2_NPL, "1-7")]),
                    translated_from="zh"),
            DemoDoc("first-office-action.pdf", "CTNF", "2020-04-16", "First office action",
                    "1. Claim 1 lacks novelty (Article 22(2)) over D1 (CN 108303103 A), which "
                    "matches camera lane lines against a map to correct a GNSS position.\n"
                    "2. Claims 3 to 5 lack an inventive step (Article 22(3)) over D1 combined "
                    "with D2 (US 2018/0067966 A1), which fuses the lateral offset with IMU "
                    "data in an extended Kalman filter.\n"
                    "3. Claim 2 would be allowable if rewritten to include claim 1.",
                    translated_from="zh"),
            DemoDoc("amended-claims.pdf", "AMND", "2020-08-28", "Replacement claims",
                    numbered([F2_CLAIM1_CN] + F2_CLAIMS[2:]), translated_from="zh"),
            DemoDoc("notification-of-grant.pdf", "NOA", "2021-01-05",
                    "Notification to grant patent right",
                    "The patent right is granted on the basis of claims 1-6 submitted on "
                    "2020-08-28.", translated_from="zh", visibility="public"),
        ),
        cites=(
            DemoCite("CN 108303103 A", "X", "1, 2, 6, 7", "search", "search-report.pdf"),
            DemoCite("US 2018/0067966 A1", "Y", "3-5", "search", "search-report.pdf"),
            DemoCite(F2_NPL, "A", "1-7", "search", "search-report.pdf"),
        ),
    )
    us = DemoDossier(
        office="US", number="16/991,574", filing_date="2020-08-12",
        publication_number="US 2021/0048163 A1", publication_date="2021-02-18",
        priorities=(("CN", "201910738254.X", "2019-08-12"),), **common,
        docs=(
            DemoDoc("claims.pdf", "CLM", "2020-08-12", "Claims as filed", numbered(F2_CLAIMS)),
            DemoDoc("pph-request.pdf", "PPH", "2021-03-02",
                    "Request for participation in the PPH program",
                    "Office of earlier examination: CNIPA, application 201910738254.X, "
                    "notification to grant of 2021-01-05.\n"
                    "All claims of this application sufficiently correspond to claims 1-6 "
                    "allowed by CNIPA. Copies of the CNIPA office actions and an English "
                    "translation are attached."),
            DemoDoc("search-strategy.txt", "SRNT", "2021-07-22",
                    "Examiner's search strategy and results",
                    "L1  2210  (lane adj (line or marking)) same (map or hd-map)\n"
                    "L2   388  L1 and (gnss or gps) and (match$4 or register$4)\n"
                    "L3    41  L2 and (dash$3 near3 (pattern or phase or type))\n"
                    "L4    12  L3 and @pd<\"20190812\"\n"
                    "Databases: US-PGPUB; USPAT; EPO; JPO; CN (translated); IEEE Xplore",
                    fmt="text"),
            DemoDoc("non-final-rejection.pdf", "CTNF", "2021-07-22", "Non-final office action",
                    "Claims 1-7 are rejected.\n\n"
                    "Claims 1, 2, 6 and 7 are rejected under 35 U.S.C. 102(a)(1) as being "
                    "anticipated by Zhou (US 2018/0067966 A1).\n"
                    "Claims 3-5 are rejected under 35 U.S.C. 103 over Zhou in view of Wang "
                    "(CN 108303103 A).\n"
                    "The PPH request is granted; this action is made special."),
            DemoDoc("amendment.pdf", "AMND", "2021-10-20", "Amendment and listing of claims",
                    us_amendment(F2_CLAIMS, {1: F2_CLAIM1_US, 4: None})),
            DemoDoc("remarks.pdf", "REM", "2021-10-20", "Applicant arguments / remarks",
                    "Claim 1 now requires classifying lane lines as solid or dashed and using "
                    "the phase of the dash pattern to determine a longitudinal offset. "
                    "Neither Zhou nor Wang corrects the longitudinal position; both only "
                    "estimate a lateral offset. Claim 4 is cancelled."),
            DemoDoc("final-rejection.pdf", "CTFR", "2022-01-11", "Final office action",
                    "Claims 1-3 and 5-7 are rejected under 35 U.S.C. 103 over Zhou in view of "
                    "Schreiber (LaneLoc, 2013), which registers dashed lane markings to a map "
                    "to fix the longitudinal position. THIS ACTION IS MADE FINAL."),
            DemoDoc("notice-of-allowance.pdf", "NOA", "2022-05-03",
                    "Notice of allowance and fee(s) due",
                    "Claims 1-3 and 5-7 are allowed after the interview of 2022-03-15, with "
                    "an examiner's amendment adding the confidence threshold of claim 5 to "
                    "claim 1."),
        ),
        cites=(
            DemoCite("US 2018/0067966 A1", "X", "1, 2, 6, 7", "examination",
                     "non-final-rejection.pdf"),
            DemoCite("CN 108303103 A", "Y", "3-5", "examination", "non-final-rejection.pdf"),
            DemoCite(F2_NPL, "Y", "1-3, 5-7", "examination", "final-rejection.pdf"),
        ),
    )
    return [cn, us]


# Family 3: KR first filing, JP with priority ------------------------------------------

F3_TITLE = "Display panel with an under-screen camera region and electronic device"
F3_CLAIMS = [
    "A display panel comprising: a substrate; a display area including a first region in "
    "which pixels are arranged at a first density and a second region which overlaps a "
    "camera module and in which pixels are arranged at a second density lower than the "
    "first density; and transmission areas located between the pixels of the second "
    "region, wherein no thin-film transistor is located in the transmission areas.",
    "The display panel of claim 1, wherein the pixels of the second region are driven by "
    "pixel circuits located in the first region and connected to them by transparent "
    "wirings.",
    "The display panel of claim 2, wherein the transparent wirings comprise indium tin "
    "oxide.",
    "The display panel of any one of claims 1 to 3, further comprising a light-blocking "
    "layer surrounding each transmission area.",
    "An electronic device comprising the display panel of any one of claims 1 to 4 and a "
    "camera module disposed under the second region.",
]
F3_CLAIM1_AMENDED = F3_CLAIMS[0].replace(
    "wherein no thin-film transistor is located in the transmission areas.",
    "wherein no thin-film transistor is located in the transmission areas, and the pixels "
    "of the second region are driven by pixel circuits located in the first region and "
    "connected to them by transparent wirings.")
F3_KR_CLAIMS_KO = "\n".join((
    "【청구항 1】",
    "기판; 제1 밀도로 화소가 배열된 제1 영역과, 카메라 모듈과 중첩되며 상기 제1 밀도보다 "
    "낮은 제2 밀도로 화소가 배열된 제2 영역을 포함하는 표시 영역; 및 상기 제2 영역의 "
    "화소들 사이에 위치하는 투과 영역을 포함하고, 상기 투과 영역에는 박막 트랜지스터가 "
    "배치되지 않는, 표시 패널.",
    "【청구항 2】",
    "제1항에 있어서, 상기 제2 영역의 화소들은 상기 제1 영역에 위치하는 화소 회로에 "
    "의해 구동되고 투명 배선으로 연결되는, 표시 패널.",
))


def _family_display() -> list[DemoDossier]:
    common: dict[str, Any] = {"title": F3_TITLE, "applicants": ("Hanbit Display Co., Ltd.",),
              "ipc": ("H10K 59/65", "G09F 9/30", "H04N 23/57")}
    kr = DemoDossier(
        office="KR", number="10-2020-0086143", filing_date="2020-07-13",
        publication_number="KR 10-2022-0008052 A", publication_date="2022-01-20",
        **common,
        docs=(
            DemoDoc("claims-ko.txt", "CLM", "2020-07-13", "Claims (original)",
                    F3_KR_CLAIMS_KO, fmt="text", language="ko"),
            DemoDoc("claims-en.pdf", "CLM", "2020-07-13", "Claims", numbered(F3_CLAIMS),
                    translated_from="ko", original="claims-ko.txt"),
            DemoDoc("preliminary-rejection.pdf", "CTNF", "2022-02-08",
                    "Notice of preliminary rejection",
                    "[Novelty] Claims 1 and 5 are disclosed by cited invention 1 "
                    "(US 2020/0241138 A1), which shows a low-density pixel region above a "
                    "camera with TFT-free light transmission areas.\n"
                    "[Inventive step] Claims 2 to 4 could easily be invented from cited "
                    "invention 1 combined with cited invention 2 (KR 10-2019-0079463 A), "
                    "which drives the pixels above the camera from circuits outside it.",
                    translated_from="ko"),
            DemoDoc("amendment.pdf", "AMND", "2022-04-07", "Written amendment",
                    numbered([F3_CLAIM1_AMENDED] + F3_CLAIMS[2:]), translated_from="ko"),
            DemoDoc("written-opinion.pdf", "REM", "2022-04-07", "Written opinion",
                    "Claim 1 now includes the features of claim 2. Cited invention 2 places "
                    "the driving circuits outside the display area and uses opaque metal "
                    "wirings, which would block the camera; the amended claim avoids this.",
                    translated_from="ko"),
            DemoDoc("decision-to-grant.pdf", "NOA", "2022-08-30", "Decision to grant",
                    "Registration is decided for claims 1 to 4 as amended on 2022-04-07.",
                    translated_from="ko"),
        ),
        cites=(
            DemoCite("US 2020/0241138 A1", "X", "1, 5", "examination",
                     "preliminary-rejection.pdf"),
            DemoCite("KR 10-2019-0079463 A", "Y", "2-4", "examination",
                     "preliminary-rejection.pdf"),
        ),
    )
    jp = DemoDossier(
        office="JP", number="2021-114628", filing_date="2021-07-09",
        publication_number="JP 2022-017219 A", publication_date="2022-01-25",
        priorities=(("KR", "10-2020-0086143", "2020-07-13"),), **common,
        docs=(
            DemoDoc("claims-en.pdf", "CLM", "2021-07-09", "Claims", numbered(F3_CLAIMS),
                    translated_from="ja"),
            DemoDoc("pph-request.pdf", "PPH", "2022-09-14",
                    "Request for accelerated examination (Patent Prosecution Highway)",
                    "Office of earlier examination: KIPO, 10-2020-0086143, decision to grant "
                    "of 2022-08-30. Claims 1-4 of this application are amended to correspond "
                    "to KR claims 1-4.", translated_from="ja", visibility="restricted",
                    offices=("KR",)),
            DemoDoc("reasons-for-refusal.pdf", "CTNF", "2022-11-01",
                    "Notice of reasons for refusal",
                    "Reason (inventive step, Article 29(2)): claim 3. Indium tin oxide "
                    "wirings are well known (cited document 2, JP 2019-215742 A). Claims 1, 2 "
                    "and 4 correspond to the claims granted by KIPO and no reason for refusal "
                    "has been found for them.\n"
                    "Cited documents: 1. US 2020/0241138 A1; 2. JP 2019-215742 A",
                    translated_from="ja", visibility="restricted", offices=("CN", "KR")),
            DemoDoc("amended-claims.pdf", "AMND", "2023-01-20", "Amendment of claims",
                    numbered([F3_CLAIM1_AMENDED, F3_CLAIMS[3], F3_CLAIMS[4]]),
                    translated_from="ja"),
            DemoDoc("decision-to-grant.pdf", "NOA", "2023-03-07", "Decision to grant a patent",
                    "Claims 1 to 3 as amended on 2023-01-20 are allowed.",
                    translated_from="ja", visibility="public"),
        ),
        cites=(
            DemoCite("US 2020/0241138 A1", "A", "1-4", "examination",
                     "reasons-for-refusal.pdf"),
            DemoCite("JP 2019-215742 A", "Y", "3", "examination", "reasons-for-refusal.pdf"),
        ),
    )
    return [kr, jp]


# Family 4: AU first filing, GB with priority ------------------------------------------

F4_TITLE = "Remote monitoring system for livestock water troughs"
F4_CLAIMS = [
    "A system for monitoring a livestock water trough, comprising: a water level sensor "
    "mounted to the trough; a flow sensor on the supply line of the trough; a solar-powered "
    "controller configured to compare the water level with the flow to detect a leak or a "
    "blocked inlet; and a low-power wide-area radio transmitter configured to send an alert "
    "to a remote server when a leak or a blocked inlet is detected.",
    "The system of claim 1, wherein the water level sensor is an ultrasonic sensor.",
    "The system of claim 1 or 2, wherein the controller samples the sensors every 15 "
    "minutes, and at least once a minute while water flows.",
    "The system of any one of claims 1 to 3, further comprising a temperature sensor, "
    "wherein the controller sends an alert when the water temperature exceeds a threshold.",
    "A method of monitoring a livestock water trough using the system of any one of "
    "claims 1 to 4.",
]
F4_CLAIM1_GB = F4_CLAIMS[0].replace(
    "to detect a leak or a blocked inlet;",
    "to detect a leak when water flows for more than a set period while the water level is "
    "at or above a full mark, and a blocked inlet when the level falls while no water "
    "flows;")
F4_ART = ("AU 2016100925 A4", "US 2017/0202189 A1", "GB 2551380 A",
          "LoRaWAN 1.0.3 Specification, LoRa Alliance, July 2018")


def _family_trough() -> list[DemoDossier]:
    common: dict[str, Any] = {"title": F4_TITLE, "applicants": ("Outback Sensing Pty Ltd",),
              "ipc": ("A01K 7/02", "G01F 23/296", "H04W 4/38")}
    au = DemoDossier(
        office="AU", number="2019283742", filing_date="2019-12-18",
        publication_number="AU 2019283742 A1", publication_date="2021-06-24",
        **common,
        docs=(
            DemoDoc("claims.pdf", "CLM", "2019-12-18", "Claims", numbered(F4_CLAIMS)),
            DemoDoc("examination-report-1.txt", "EXRP", "2021-09-02",
                    "Examination report No. 1 for your standard patent application",
                    f"1. Claims 1, 2 and 5 are not novel in light of D1 ({F4_ART[0]}), a "
                    "trough float monitor that reports a low level by radio.\n"
                    f"2. Claims 3 and 4 lack an inventive step over D1 and D2 ({F4_ART[1]}), "
                    "which samples a flow meter more often while water flows.\n"
                    f"D3 ({F4_ART[3]}) is cited as background on low-power radio.",
                    fmt="text"),
            DemoDoc("notice-of-acceptance.pdf", "NOA", "2022-02-17", "Notice of acceptance",
                    "The application has been accepted with amended claims 1-4 filed on "
                    "2022-01-20.", visibility="public"),
        ),
        cites=(
            DemoCite(F4_ART[0], "X", "1, 2, 5", "examination", "examination-report-1.txt"),
            DemoCite(F4_ART[1], "Y", "3, 4", "examination", "examination-report-1.txt"),
            DemoCite(F4_ART[3], "A", "1", "examination", "examination-report-1.txt"),
        ),
    )
    gb = DemoDossier(
        office="GB", number="2019874.9", filing_date="2020-12-16",
        publication_number="GB 2590521 A", publication_date="2021-06-30",
        priorities=(("AU", "2019283742", "2019-12-18"),), **common,
        docs=(
            DemoDoc("claims.pdf", "CLM", "2020-12-16", "Claims as filed", numbered(F4_CLAIMS)),
            DemoDoc("search-report.pdf", "SRPT", "2021-05-27",
                    "Search report under section 17",
                    "Claims searched: 1-5\n"
                    "Field of search: UK CL (Edition X) A1M; INT CL A01K, G01F, H04W; "
                    "online: WPI, EPODOC\n\n"
                    + search_table([("X", F4_ART[0], "1, 2, 5"), ("Y", F4_ART[1], "3, 4"),
                                    ("A", F4_ART[2], "1")]),
                    visibility="public"),
            DemoDoc("examination-report.txt", "EXRP", "2021-11-09",
                    "Examination report under section 18(3)",
                    f"Claim 1 is not new over D1 ({F4_ART[0]}). The applicant's attention is "
                    "drawn to the leak logic described on page 7, which does not appear in "
                    "the documents cited.", fmt="text"),
            DemoDoc("amended-claims.pdf", "AMND", "2022-01-10", "Amended claims",
                    numbered([F4_CLAIM1_GB] + F4_CLAIMS[1:])),
            DemoDoc("letter.pdf", "REM", "2022-01-10", "Response to examination report",
                    "Claim 1 has been limited to the leak and blockage logic of page 7, lines "
                    "3-19. D1 reports a low level only and cannot tell a leak from heavy "
                    "drinking; the claimed comparison of flow duration with a full mark does "
                    "exactly that."),
            DemoDoc("intention-to-grant.pdf", "NOA", "2022-03-22", "Notification of grant",
                    "The application complies with the Act and Rules; a patent will be "
                    "granted on 2022-04-19."),
        ),
        cites=(
            DemoCite(F4_ART[0], "X", "1, 2, 5", "search", "search-report.pdf"),
            DemoCite(F4_ART[1], "Y", "3, 4", "search", "search-report.pdf"),
            DemoCite(F4_ART[2], "A", "1", "search", "search-report.pdf"),
        ),
    )
    return [au, gb]


def demo_families() -> list[list[DemoDossier]]:
    """The demo families, each with its priority filing first."""
    return [_family_sulfide(), _family_lanes(), _family_display(), _family_trough()]


def demo_dossiers() -> list[DemoDossier]:
    return [dossier for family in demo_families() for dossier in family]


#: Dossiers worth opening first (office, normalised number), printed by ``caseforum demo``.
DEMO_START = (("JP", "2019041872"), ("US", "16991574"), ("KR", "1020200086143"))


# Rendering -----------------------------------------------------------------------------


def _header(dossier: DemoDossier, doc: DemoDoc) -> list[str]:
    number = parse_application_number(dossier.number, office=dossier.office)
    lines = [OFFICE_NAMES.get(dossier.office, dossier.office),
             f"Application {number}    Date {doc.date}"]
    if doc.translated_from:
        lines.append(f"English translation of the {LANGUAGE_NAMES[doc.translated_from]} "
                     "original, for information")
    return lines


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Wrap by character count, narrowing until every line fits: much cheaper
    than fpdf2's per-glyph ``multi_cell`` and just as readable."""
    chars = int(width / (pdf.font_size * 0.5)) + 4
    while True:
        lines = textwrap.wrap(text, chars, break_on_hyphens=False) or [""]
        if chars <= 20 or all(pdf.get_string_width(line) <= width for line in lines):
            return lines
        chars -= 3


def render_pdf(header: list[str], heading: str, body: str) -> bytes:
    """A PDF of one or a few pages with a real text layer (fpdf2 core font, Latin-1)."""
    from fpdf import FPDF

    margin, line_mm = 20.0, 5.2
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(PDF_DATE)
    pdf.set_creator("CaseForum demo data")
    pdf.set_auto_page_break(False)
    width = pdf.w - 2 * margin
    y = margin

    def write(lines: list[str], size: float, style: str = "", gap: float = 0.0) -> None:
        nonlocal y
        pdf.set_font("helvetica", style=style, size=size)
        for text in lines:
            for line in _wrap(pdf, text, width) if text.strip() else [""]:
                if y + line_mm > pdf.h - margin:
                    pdf.add_page()
                    y = margin
                y += line_mm * size / 10
                pdf.text(margin, y, line)
            y += gap

    pdf.add_page()
    write(header, 9)
    y += 4
    write([heading], 13, "B", 2)
    write(body.split("\n"), 10, gap=1.5)
    return bytes(pdf.output())


def document_bytes(dossier: DemoDossier, doc: DemoDoc) -> bytes:
    if doc.fmt == "scan":
        return (ASSETS / SCAN_ASSET).read_bytes()
    header = _header(dossier, doc)
    if doc.fmt == "text":
        return ("\n".join(header) + "\n\n" + doc.heading + "\n\n" + doc.body).encode("utf-8")
    return render_pdf(header, doc.heading, doc.body)


# Loading -------------------------------------------------------------------------------


def _existing_documents(session: Session, app_id: int) -> dict[str, int]:
    rows = session.exec(select(Document).where(Document.application_id == app_id))
    return {d.filename: d.id or 0 for d in rows}


def _stored_name(doc: DemoDoc) -> str:
    """The download name the store gives ``doc``: what tells whether it is there."""
    return safe_filename(doc.name, "text/plain" if doc.fmt == "text" else "application/pdf")


def _load_one(session: Session, store: StorageBackend, registry: DocTypeRegistry,
              dossier: DemoDossier, stored: list[StoredFile]) -> int:
    added = 0
    app = service.get_dossier(session, office=dossier.office, number=dossier.number)
    if app is None:
        app, _ = service.upsert_dossier(session, data=dossier.data(), actor_id=None)
        added += 1
    docs = _existing_documents(session, app.id or 0)
    by_demo_name = {doc.name: doc for doc in dossier.docs}
    for doc in dossier.docs:
        if _stored_name(doc) in docs:
            continue
        meta = service.DocumentMeta(
            code=doc.code, date=date.fromisoformat(doc.date), language=doc.language,
            is_translation=doc.translated_from is not None, visibility=doc.visibility,
            offices=doc.offices,
            translation_of=docs[_stored_name(by_demo_name[doc.original])] if doc.original
            else None)
        document, saved = service.add_document(
            session, store, app=app, meta=meta,
            stream=io.BytesIO(document_bytes(dossier, doc)), filename=doc.name,
            max_bytes=MAX_BYTES, registry=registry, actor_id=None)
        stored.append(saved)
        docs[document.filename] = document.id or 0
        added += 1
    by_name = {doc.name: docs[_stored_name(doc)] for doc in dossier.docs}
    present = {(c.cited, c.document_id) for c in session.exec(
        select(Citation).where(Citation.application_id == app.id))}
    for cite in dossier.cites:
        document_id = by_name[cite.doc] if cite.doc else None
        if (cite.cited, document_id) in present:
            continue
        service.add_citation(session, app=app, actor_id=None, data=CitationIn(
            cited=cite.cited, category=cite.category, claims=cite.claims, phase=cite.phase,
            document_id=document_id))
        present.add((cite.cited, document_id))
        added += 1
    return added


def load_demo_dossiers(engine: Engine, store: StorageBackend, registry: DocTypeRegistry) -> int:
    """Add whatever part of the demo families is missing; returns how many
    dossiers, documents and citations were added (0 when all were there).

    Each dossier is one transaction: a failure rolls it back, removes the
    files it stored, and re-raises, so a half-loaded dossier never stays.
    """
    added = 0
    for dossier in demo_dossiers():
        stored: list[StoredFile] = []
        with open_session(engine) as session:
            try:
                added += _load_one(session, store, registry, dossier, stored)
                session.commit()
            except BaseException:
                session.rollback()
                for saved in stored:
                    store.discard(saved)
                raise
    log.info("demo dossiers: %d records added", added)
    return added


def demo_applications(session: Session) -> list[Application]:
    """The demo dossiers present in the database (for tests and the CLI)."""
    found = []
    for dossier in demo_dossiers():
        app = service.get_dossier(session, office=dossier.office, number=dossier.number)
        if app is not None:
            found.append(app)
    return found
