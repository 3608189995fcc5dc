"""The boot agent: runs inside the initramfs, between "network is up" and switch_root.

Nothing here has side effects at import. The agent imports nothing from `server`.
"""
