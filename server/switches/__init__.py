"""Where nodes are plugged in: switches' forwarding tables over SNMP (snmp.py), what the server
knows of each port (ports.py: sightings from SNMP and from the agents' LLDP), and naming a node by
its port (binding.py)."""
