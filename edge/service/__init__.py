"""The service: the daemon loop, its config, systemd notify, the self-check and its statistics."""
