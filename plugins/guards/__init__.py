"""The five built-in guard rules, one plugin module each (SPEC §3).

Orders leave gaps of ten so third-party rules can sit between them.
Comparisons are written as ``not (value within limit)`` so a NaN input
vetoes instead of slipping through.
"""
