"""Run store: durable, live-readable records of training runs (see store.py)."""

from lab.runs.store import (RunReader, RunStore, RunStoreError, RunSummary, list_runs,  # noqa: F401
                            list_runs_with_errors)
