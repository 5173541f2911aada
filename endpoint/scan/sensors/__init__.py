"""Sensors: each yields typed evidence records about one channel (processes, files, network)."""
