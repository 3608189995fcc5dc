"""`python -m bootagent …` and the frozen `swarmboot-agent` binary's entry point."""

import sys

from bootagent.cli import main

if __name__ == "__main__":
    sys.exit(main())
