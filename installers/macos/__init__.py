"""The macOS package: the pkg root (payload, LaunchDaemon), its scripts, and the MDM profiles.

``build.build`` lays out what ``pkgbuild``/``productbuild`` take (the macOS CI workflow runs them);
``profiles`` writes the configuration profiles an MDM pushes, from the daemon's settings table.
"""
