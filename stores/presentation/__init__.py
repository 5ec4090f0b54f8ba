"""Presentation shared by both monitors: :mod:`~stores.presentation.style` (the
matplotlib style) and :mod:`~stores.presentation.site` (the HTML site builder)."""
