"""What the daemon keeps watching between full rescans, one tracker per kind of evidence.

``processes``: the live processes, re-read only where new, and which of them can change the sightings;
``files``: every home's and the machine's config files, rescanned when a watched directory changes;
``network``: the network sensor's thread and what it has seen; ``events``: the queue where the trackers'
threads tell the daemon's loop that something changed.
"""
