"""Environment families: one adapter package per family, all speaking the protocol in ``base``, each declared once
in ``registry.FAMILIES``.

Adapter packages run inside worker processes started with the family's own interpreter, so this package and its
shared modules (``base``, ``registry``, ``releases``, ``messages``) import only the standard library; each adapter
imports its engine lazily.
"""
