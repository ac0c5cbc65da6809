"""Parameter types shared by the routes: ids that the database can hold.

An id beyond 32 bits breaks PostgreSQL's ``integer`` and one beyond 64 bits breaks
SQLite; a negative one is never a row. Declaring the bounds once, on the parameter,
makes every such request a 422 that says what to send, before any query runs.
"""

from typing import Annotated

from fastapi import Path, Query

#: The largest id a path or query parameter may carry: a PostgreSQL ``integer``.
MAX_ID = 2**31 - 1

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive id")]
QueryId = Annotated[int, Query(ge=1, le=MAX_ID, description="a positive id")]
#: an optional id in a query string (``?category=``)
OptionalQueryId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a positive id")]
