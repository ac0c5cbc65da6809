"""Full-text search over dossiers, documents, threads and posts (Whoosh).

The interface the rest of the app uses is small, so another engine could take
Whoosh's place:

- :func:`caseforum.search.query.search` — one page of results for one viewer,
  with facet counts, snippets and the permission filter inside the query;
- :class:`caseforum.search.indexer.SearchIndexer` — the event-log consumer that
  keeps the index current (the only writer);
- :func:`caseforum.search.indexer.rebuild` — ``caseforum reindex``.

This module imports nothing heavy: the app registers the indexer at start-up and
Whoosh is loaded on the first search or index write.
"""
