"""agentroster's collector: enrolls devices, ingests their reports, serves the console's API.

Kept light on purpose: ``agentroster`` imports ``console.server.cli`` at every start, so nothing
heavy (FastAPI, SQLModel, uvicorn) is imported here.
"""
