"""End-to-end tests: a gateway, real HTTP on loopback, the simulator (or a real process) upstream."""
