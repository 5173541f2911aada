"""What a registration can fail on; each is an ``EndpointError`` with its own stable code, and the
message is one line for the person at the terminal.
"""

from __future__ import annotations

from endpoint.errors import EndpointError


class RegisterError(EndpointError):
    """A registration could not be made; the message is one line for the person at the terminal."""

    code = "registration_failed"



class StateUnavailable(RegisterError):
    """The daemon's state cannot be read (not there yet, or root-only)."""

    code = "state_unavailable"



class NotEnrolled(RegisterError):
    """This device has no key from a collector yet."""

    code = "not_enrolled"



class UnknownSighting(RegisterError):
    """ID names no sighting the daemon knows, or more than one."""

    code = "unknown_sighting"



class NotYours(RegisterError):
    """The sighting belongs to another user (or to the machine) and the registrant is not root."""

    code = "not_yours"



class InvalidRegistration(RegisterError):
    """A field is missing or outside the collector's limits."""

    code = "invalid_registration"



class RegistrationRefused(RegisterError):
    """The collector answered 4xx: the reason it gave."""

    code = "registration_refused"
