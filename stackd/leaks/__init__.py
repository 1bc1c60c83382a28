"""Host resources stackd owns: `lister` finds them (reads only; `tools/leaks`),
`reclaim` removes one root's (kills, unmounts, removes cgroups)."""

from stackd.leaks.lister import Leak, devices, find_leaks, monitors
from stackd.leaks.reclaim import ask_monitor, reclaim

__all__ = ["Leak", "ask_monitor", "devices", "find_leaks", "monitors", "reclaim"]
