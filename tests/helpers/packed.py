"""Real packed image versions for tests: see swarmboot/lab/packed.py (shared with the benchmarks)."""

from swarmboot.lab.packed import MiB, make_version

__all__ = ["MiB", "make_version"]
