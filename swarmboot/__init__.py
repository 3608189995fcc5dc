"""swarmboot: the administrator's commands (`swarmboot`, `lchroot`), on top of every other layer.

The parts live beside this package: `ground` (settings, runner, errors, the server/agent
contract), `builder`, `server` and `bootagent` (docs/design.md, "Code layout").
"""
