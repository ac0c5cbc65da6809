"""The work-sharing core: dossiers of published applications, their families,
documents and citations, and who may see which."""
