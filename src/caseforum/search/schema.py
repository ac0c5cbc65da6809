"""The Whoosh schema: one index for every kind of item, told apart by ``kind``."""

from __future__ import annotations

from whoosh.fields import DATETIME, ID, KEYWORD, NUMERIC, STORED, TEXT, Schema

from caseforum.search.analysis import mixed_analyzer

KINDS = ("dossier", "document", "thread", "post", "exchange")  # exchange: ICE plugin
#: fields whose values are counted for the facets (their terms are the values)
FACET_FIELDS = ("kind", "office", "source", "group", "category", "year")
#: free-text fields: the ones a query's words are scored in
TEXT_FIELDS = ("title", "body", "applicant")


def make_schema() -> Schema:
    text = mixed_analyzer()
    return Schema(
        id=ID(unique=True, stored=True),  # "dossier:12", "post:7", ...
        kind=ID(stored=True),
        title=TEXT(analyzer=text, stored=True, field_boost=2.0, multitoken_query="phrase"),
        body=TEXT(analyzer=text, stored=True, multitoken_query="phrase"),
        applicant=TEXT(analyzer=text, stored=True, multitoken_query="phrase"),
        numbers=KEYWORD(stored=True),  # normalised: JP2019041872, JP2020149862, ...
        ipc=KEYWORD(stored=True, commas=False),  # "F28F1/32 F28D1/047"
        cited=KEYWORD(stored=True),  # normalised publication numbers
        code=KEYWORD(stored=True),  # document codes
        office=ID(stored=True),
        source=ID(),  # where a dossier or document came from: hosted, opd_link, ...
        group=ID(),  # a document's group in the code tables: search, examination, ...
        category=ID(),  # a thread's or post's forum category (its id)
        thread=ID(),  # a thread's id on the thread and each of its posts
        year=NUMERIC(stored=True),
        date=DATETIME(stored=True, sortable=True),  # sortable: a column, read whole
        url=STORED(),
        acl=KEYWORD(),  # tokens that grant the item: caseforum.search.acl
        cursor=NUMERIC(stored=True),  # the indexer's own cursor, on one marker item
    )
