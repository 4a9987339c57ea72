"""Instance hosts: Ray actors that own the runtime's worker pools, enforce TTLs and make steps idempotent."""
