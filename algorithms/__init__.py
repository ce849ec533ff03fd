"""Processing algorithms: one file per Toolbox entry, each exposing ``ALGORITHMS = [cls, ...]``.

A file maps parameters to one engine call and returns the outputs dict; nothing else.
"""
