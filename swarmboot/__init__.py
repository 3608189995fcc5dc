"""swarmboot: build an OS image once, boot a cluster from it by BitTorrent.

This package holds what every part shares: settings, the one place that runs external commands,
error types and the administrator's command line. It imports nothing heavy at import time.
"""

__version__ = "0.1.0"
