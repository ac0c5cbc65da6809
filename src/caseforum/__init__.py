"""CaseForum: work sharing between patent offices.

Plugins write ``from caseforum import hookimpl`` and decorate functions named
after the hooks in :mod:`caseforum.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"

PROJECT = "caseforum"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "__version__", "hookimpl", "hookspec"]
