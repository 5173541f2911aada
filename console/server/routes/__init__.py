"""One router per resource of the collector API, all under ``API``."""

API = "/api/v1"
