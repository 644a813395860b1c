"""Graph-level views of a model: layer pairs, fusion, sizes."""
