"""One Portal Dossier link: a real-time dossier source for CaseForum."""
