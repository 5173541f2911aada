"""The scan: sensors read processes, files and network calls, parsers read each config dialect, the
engine turns their evidence into sightings, and ``run.scan()`` makes one ``agentroster.scan/1`` document.

Nothing here runs in the background or talks to the collector: that is ``endpoint.service``.
"""
