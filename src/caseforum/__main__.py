"""``python -m caseforum`` runs the same CLI as the ``caseforum`` command."""

from caseforum.entry import main

main()
