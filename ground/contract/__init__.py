"""The contract between the server and the boot agent (docs/design.md, "Contracts").

A deployed initramfs lives for months while the server is upgraded: what is here is a wire
format. Change it on purpose (golden documents in tests/data pin it), and only compatibly within
a major plan version.
"""
