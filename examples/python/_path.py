"""Lets the examples run from a checkout without installing the package.

An installed ``tickgate`` (pip install clients/python) is used when present;
otherwise clients/python/src of this repository is put on the path.
"""
import os
import sys

try:
    import tickgate  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python", "src"))
