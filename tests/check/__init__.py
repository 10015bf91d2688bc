"""Test package (a package so that the conftest.py of each folder has a name of its own)."""
