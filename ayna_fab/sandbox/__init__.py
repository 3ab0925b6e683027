"""Local sandbox hosts: Debian bookworm under real systemd, reached over real SSH.

Each host is a systemd-nspawn container booted from one cached root filesystem
through its own copy-on-write overlay, in its own network namespace (loopback
only), with sshd reachable from the controller through a TCP forwarder that can
add latency and cut live connections. They start as a provider hands a server
over: root by key only, nothing of Ayna's installed.
"""
