"""Widgets of the absurd-tui console."""
