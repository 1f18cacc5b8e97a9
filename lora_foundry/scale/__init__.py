"""Running stage units on every core (``local``) or on a Ray cluster (``ray_runner``).

A *unit* is one piece of a stage's work (a video, a chunk of frames, an embedding batch) that a
worker can do without the manifest: it writes its files atomically into the workspace and sends
back messages (``workspace.remote``) that the driver alone commits. Runners differ only in where
the units run; the driver's commits, and so the results, are the same.
"""
