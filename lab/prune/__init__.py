"""Independence-aware channel pruning: choose channels per group with a named criterion, build a
narrower student of the same family and initialise it from the teacher (selected filters kept,
least-squares reconstruction of the dropped channels folded into the next layers)."""

from lab.entrypoints import make_callable
from lab.prune.build import prune, select_channels
from lab.prune.criteria import CRITERIA, CriterionContext, get_criterion, register_criterion
from lab.prune.plan import FLASH_VAED, parse_keep, resolve_keep
from lab.prune.transfer import fold_into, transfer

# ``from lab import prune`` gives this package (importing a subpackage binds its name on lab), so calling the
# package calls prune() (lab.entrypoints).
make_callable(__name__, prune)

__all__ = ["CRITERIA", "CriterionContext", "FLASH_VAED", "fold_into", "get_criterion", "parse_keep", "prune",
           "register_criterion", "resolve_keep", "select_channels", "transfer"]
