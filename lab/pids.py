"""Whether a process that wrote a pid into a file is still running: how the lab tells a stale lock, a
killed save's temporary folder or a dead app's scratch folder from one in use."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless ``pid`` is certainly gone. A pid <= 0 is not one the lab wrote (os.kill would signal a
    process group), so whatever names it is treated as in use; another user's live process is alive."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # PermissionError among them: it exists, it is someone else's
        return True
    return True
