"""Fusion networks (torch only): one module per network, registered in registry.py."""
