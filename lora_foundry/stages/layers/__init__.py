"""Layers stages; see ../__init__.py for the layout rule."""
