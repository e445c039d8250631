"""Rolodex benchmarks: ``python -m bench --quick|--full [names...]`` (see bench/README.md)."""
