"""prompthone: find the prompt that makes *your* model do best on *your* task.

Runs offline on an embedded model (SmolLM2-135M-Instruct on llama.cpp) or on any OpenAI-compatible
server, with published methods (APE, APO, OPRO, GREATER, ...) behind one optimizer contract, and PAS
(`prompthone.augment`): a small fine-tuned model that complements any prompt for any model.
"""

from __future__ import annotations

from prompthone._version import __version__
from prompthone.api import default_model, evaluate, optimize, resolve_model, resume
from prompthone.augment.augmenter import Augmenter
from prompthone.errors import BackendError, BudgetExhausted, ConfigError, InputError, PrompthoneError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import EvalResult, Evaluator
from prompthone.evaluation.prices import Price
from prompthone.export import export
from prompthone.grid_study import StudyResult, study
from prompthone.models.base import Model
from prompthone.models.ray_executor import RayExecutor, RayModel
from prompthone.models.registry import make_model
from prompthone.models.spec import ModelSpec
from prompthone.prompts.prompt import Prompt
from prompthone.run.results import OptimizationResult
from prompthone.tasks import load_task
from prompthone.tasks.example import Example, Task

__all__ = [
    "Augmenter", "BackendError", "Budget", "BudgetExhausted", "CallCache", "ConfigError", "EvalResult", "Evaluator",
    "Example", "InputError", "Model", "ModelSpec", "OptimizationResult", "Price", "Prompt", "PrompthoneError",
    "RayExecutor",
    "RayModel", "StudyResult", "Task",
    "__version__", "default_model", "evaluate", "export", "load_task", "make_model", "optimize", "resolve_model",
    "resume", "study",
]
