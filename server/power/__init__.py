"""Power control of nodes: IPMI (ipmitool, lanplus), Redfish (HTTP) and Wake-on-LAN, for many
nodes at once (`runner.run_all`: bounded concurrency, a per-node timeout, progress, a summary).
Credentials come from the inventory and are never printed, logged or put on a command line."""
