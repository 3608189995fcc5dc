"""The ground layer: what every part of swarmboot stands on, importing nothing of ours.

    config.py      settings (one typed table; /etc/swarmboot/swarmboot.toml, environment)
    run.py         the one place that runs external commands
    errors.py      error types (message + hint)
    store.py       the image store on the head node and a version's manifest (builder -> server)
    contract/      what the server and the boot agent say to each other: the closed sets, the
                   boot plan, the kernel command line (docs/design.md, "Contracts")

Stdlib only, no side effects at import: the boot agent is frozen with it.
"""

__version__ = "0.1.0"
