"""The package version, in a module of its own so that any module can import it without importing the package root.

`pyproject.toml` reads it from here (setuptools `attr:`, evaluated statically), so this is the one place it is written.
"""

from __future__ import annotations

__version__ = "0.1.0"
