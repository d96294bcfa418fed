"""Helpers the guided notebooks (notebooks/*.ipynb) call, so that no logic lives only in a notebook:
parameter handling (``params``), inline video and frame display (``display``), plotly figures
(``figures``), live FigureWidget updaters that subscribe to the lab's hooks (``live``), the small
experiments the notebooks run and assert on (``experiments``), and headless execution with injected parameters (``runner``).

Widgets are built so that they also work headless (nbclient in CI): every interactive control has a
plain ``update(...)`` method that the notebook calls in a later cell to show the interaction.
"""

from lab.notebook.display import frames_figure, show_table, show_video, table_html, video_html
from lab.notebook.params import NotebookParams, setup

__all__ = ["NotebookParams", "frames_figure", "setup", "show_table", "show_video", "table_html", "video_html"]
