"""The on-disk dataset store that flows through the graph. See docs/ARCHITECTURE.md."""

from .files import WorkspaceBusyError, atomic_write, atomic_write_bytes, atomic_write_text
from .items import Handle, Item, NewItem
from .stage import StageRun
from .workspace import Workspace, WorkspaceError, stage_key, workspace_path

__all__ = [
    "Handle", "Item", "NewItem", "StageRun", "Workspace", "WorkspaceBusyError", "WorkspaceError",
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "stage_key", "workspace_path",
]
