"""Registration (``POST /api/v1/registrations``): what an employee declares about one of their agents,
with the limits the collector stores it under. The device checks a request against them before sending
it; the collector's store model takes its fields from here."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from contract.bounds import NO_NUL, Default, Length, Pattern, Strip

MAX_NOTE = 4000  # characters of a purpose or an admin's note
MAX_ITEMS = 100  # providers, tools or data systems declared, each

Autonomy = Literal["supervised", "autonomous"]
SightingId = Annotated[str, Length(1, 128)]
#: text a person types: no NUL, trimmed, bounded
Name = Annotated[str, Strip(), Length(1, 256), Pattern(NO_NUL)]
Purpose = Annotated[str, Strip(), Length(1, MAX_NOTE), Pattern(NO_NUL)]
BusinessProcess = Annotated[str, Strip(), Length(max=1000), Pattern(NO_NUL)]
Item = Annotated[str, Strip(), Length(1, 128), Pattern(NO_NUL)]
Items = Annotated[list[Item], Length(max=MAX_ITEMS), Default(factory=list)]


class RegistrationRequest(TypedDict):
    sighting_id: SightingId
    owner: Name
    purpose: Purpose
    business_process: NotRequired[Annotated[BusinessProcess, Default("")]]
    providers: NotRequired[Items]
    tools: NotRequired[Items]
    data_systems: NotRequired[Items]
    autonomy: NotRequired[Annotated[Autonomy, Default("supervised")]]
