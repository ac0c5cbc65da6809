"""The examiners' forum: threads and live chat with dossier cards, and bots."""
