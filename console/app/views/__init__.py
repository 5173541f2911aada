"""Widgets: each module builds one part of the window; controllers wire them."""
