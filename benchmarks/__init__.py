"""Pipelines, the `vwm` command line, and comparison reports."""
