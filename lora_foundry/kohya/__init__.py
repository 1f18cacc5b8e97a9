"""kohya."""
