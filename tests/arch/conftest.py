"""Fixtures shared by the family tests (test_ltx2.py, test_wan22.py): a tiny teacher of the family, its
channel analysis on the module's latents, and its Flash-VAED student. Each test module names them with
``TEACHER`` (a catalog name), ``Z`` (latents the tiny teacher decodes) and ``STUDENT`` (the student's name)."""

import pytest
import torch

from lab.analysis import analyze
from lab.models import load_decoder
from lab.prune import prune


@pytest.fixture(scope="module")
def teacher(request):
    torch.manual_seed(0)
    return load_decoder(request.module.TEACHER)


@pytest.fixture(scope="module")
def analysis(request, teacher):
    return analyze(teacher, request.module.Z)


@pytest.fixture(scope="module")
def flash(request, teacher, analysis):
    """(student, prune info): independence-pruned at the Flash-VAED widths, with the flash-vaed operator plan."""
    return prune(teacher, "flash-vaed", "independence", analysis=analysis, operators="flash-vaed",
                 name=request.module.STUDENT)
