"""The boot agent: runs inside the initramfs, between "network is up" and switch_root.

Nothing here has side effects at import. The agent imports nothing from `server`.
"""

import time

# The first Python line the frozen agent runs (its entry script's first import): before it, the
# PyInstaller bootloader and libpython's start; after it, the imports (the console's first line).
PYTHON_STARTED = time.monotonic()
