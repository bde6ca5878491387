"""Bridge networks for containers: a Linux bridge per network, a veth pair per container
endpoint (one end renamed eth0 inside the container's net namespace), addresses from a
small IPAM, outbound NAT and published ports in Corral's own nftables table, and /etc/hosts
entries so that containers on one user network find each other by name.

Layers inside: settings (paths, names from the environment), model (records), state
(networks and live endpoints on disk, under one flock), ipam and ports (pure logic),
netlink (pyroute2), nft (`nft -j`), hosts (the files), endpoints (putting it together).
"""
