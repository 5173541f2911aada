"""Run by the Windows Python of tests/windows at start: the folder of Windows wheels becomes a site folder,
so that its .pth files run as in an installed Python (pywin32's puts win32/ and win32/lib/ on the path and
finds its DLLs through them)."""

import os
import site

_folder = os.environ.get("AGENTROSTER_WINE_SITE")
if _folder:
    site.addsitedir(_folder)
