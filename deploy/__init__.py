"""Deploy the face-emotion daemon from a PC to one or more Raspberry Pis over ssh.

Runs on the user's PC with plain ``python3`` (stdlib only), so that ``make deploy``
needs nothing installed besides OpenSSH. See ``deploy/README.md``.
"""
