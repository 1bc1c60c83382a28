"""Bridges, veth, IPAM, the nftables table 'stackd', published ports, embedded DNS."""
