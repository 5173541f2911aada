"""Registration: an employee declares one of their agents to the collector (owner, purpose, business
process, providers, tools, data systems, autonomy); an admin then approves or rejects it.

The sightings are the daemon's and the registration is sent with the device's key, both in the daemon's
root-only data dir. So a user asks the running daemon over its local socket
(``endpoint/service/localsock.py``, answered by ``socket_handler``), which knows who they are from the
kernel; with no daemon listening, the command reads the data dir itself (read-only), which needs root
(``sudo agentroster register``).

``policy``: who may register what, prefill and validation (pure); ``ledger``: the daemon's state and what
was registered from this machine; ``collector``: the collector's registrations API; ``socket_handler``:
the daemon's answers on its local socket; ``cli``: the command, its prompts and its list; ``errors``:
what a registration can fail on.
"""
