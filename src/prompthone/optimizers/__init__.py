"""Prompt optimization methods behind one contract (`Optimizer`), looked up by name."""

from __future__ import annotations

from prompthone.errors import ConfigError
from prompthone.optimizers.ape import APE
from prompthone.optimizers.apo import APO
from prompthone.optimizers.auto import Auto
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer
from prompthone.optimizers.gepa import GEPA
from prompthone.optimizers.greater import GREATER
from prompthone.optimizers.mipro import MIPRO
from prompthone.optimizers.opro import OPRO

METHODS: dict[str, type[Optimizer]] = {APE.name: APE, APO.name: APO, Auto.name: Auto, GEPA.name: GEPA,
                                       GREATER.name: GREATER, MIPRO.name: MIPRO, OPRO.name: OPRO}


def get_method(name: str) -> type[Optimizer]:
    """The optimizer class registered as `name`."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}") from None


__all__ = ["APE", "APO", "GEPA", "GREATER", "METHODS", "MIPRO", "OPRO", "Auto", "Candidate", "OptimizationContext",
           "OptimizationState", "Optimizer", "get_method"]
