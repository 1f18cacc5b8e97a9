"""Clusters family: embeddings, HDBSCAN groups, and choosing groups.

Algorithms: ``embedders`` (open_clip or pixel features), ``cluster`` (PCA + HDBSCAN modes),
``select`` (by id, size, nearest query). Workspace: ``embed_stage``, ``cluster_stage``,
``select_stage``."""
