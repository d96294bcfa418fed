"""The lab's main job (``python -m lab demo``): the whole Flash-VAED method at small scale on the
embedded default, with an HTML report, a side-by-side video, the saved student and results.json."""

from lab.demo.pipeline import run_demo
from lab.demo.settings import DemoSettings, full_settings, quick_settings

__all__ = ["DemoSettings", "full_settings", "quick_settings", "run_demo"]
