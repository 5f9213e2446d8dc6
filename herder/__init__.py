"""herder: turn any program into a reliable service.

The CLI imports this package on every call, so it stays empty of imports.
"""

__version__ = "0.1.0"
