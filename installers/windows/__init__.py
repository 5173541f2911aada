"""The Windows installer: an MSI built from Linux with wixl, and Group Policy templates.

``wxs.py`` writes the WiX source from the frozen endpoint folder, ``build.py`` runs wixl and adds the
tables wixl cannot write, ``admx.py`` writes the ADMX/ADML templates from the settings table.
"""
