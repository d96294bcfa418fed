"""Stage-wise dominant operator optimisation (Flash-VAED section 1.2): the causal operator library
(``operators``), swap plans (``plan``), applying them to a VAE (``swap``), the per-stage profiler
(``profiler``, ``figures``) and the per-stage operator search (``search``)."""

from lab.ops.operators import OPERATORS, get_operator, list_operators, register_operator
from lab.ops.plan import plan_names, resolve_plan
from lab.ops.swap import apply_operators, swap_decoder

__all__ = ["OPERATORS", "apply_operators", "get_operator", "list_operators", "plan_names", "register_operator",
           "resolve_plan", "swap_decoder"]
