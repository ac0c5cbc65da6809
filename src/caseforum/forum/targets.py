"""Moved to :mod:`caseforum.forum.access` (one place fetches and checks forum
objects); these names stay importable until the last callers have switched."""

from caseforum.forum.access import category_target, post_target, thread_target

__all__ = ["category_target", "post_target", "thread_target"]
