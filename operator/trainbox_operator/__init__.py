"""trainbox control plane (see issue 5)."""
