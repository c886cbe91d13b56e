"""Sandbox federation: FATE Flow 1.x and FATE-Serving emulators for fate.flow's tests.

Nothing in the collection (plugins/) imports this package.
"""
