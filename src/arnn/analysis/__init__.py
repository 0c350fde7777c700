"""Analyses that show why a network keeps or loses memory: each writes PNG figures and CSV/JSON numbers.

Run one with `python -m arnn.analysis <name> [options]`; `python -m arnn.analysis --help` lists them.
"""
