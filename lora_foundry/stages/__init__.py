"""The stages, grouped by family as ``nodes/`` is: frames, layers, clusters, tagging.

In each family, modules whose name ends in ``_stage`` drive the workspace (keys, resume, files,
annotations); every other module is an algorithm on plain arrays and values and never imports
the workspace (``tests/test_code_rules.py`` holds the rule).
"""
