"""The service on every machine: the daemon loop and what it keeps (inventory, spool), delivery to the
collector (reporter), settings with their per-OS managed sources, the device's identity, the local
socket and employees' registrations. It runs the scan (``endpoint.scan``); the scan never imports it.
"""
