"""Entry point of the ``caseforum`` command (and ``python -m caseforum``).

Starting CaseForum creates about a million objects that live as long as the process:
modules, SQLAlchemy and pydantic classes, routes, templates.  With the garbage
collector on, some 300 collections walk that growing heap while it is built, about a
tenth of the time ``caseforum serve`` takes to its first answer, and they free
nothing.  So the collector is off while the program starts: ``serve`` turns it back on
once the app is up (``caseforum.app.freeze_startup_objects`` first moves what start-up
made out of the collector's sight), every other command as soon as its imports are
done (``caseforum.cli.main``).
"""

import gc


def main() -> None:
    gc.disable()
    from caseforum.cli import main as run_cli

    run_cli()
