"""The configuration profiles (.mobileconfig) an MDM pushes to Macs running the agentroster daemon.

Three profiles, each an XML property list with PayloadScope System:

- **settings**: a managed-preferences payload (``com.apple.ManagedClient.preferences``, the one Jamf's
  "Application & Custom Settings" builds from an uploaded plist) for the ``dev.agentroster.endpoint``
  domain, which macOS writes to ``/Library/Managed Preferences/dev.agentroster.endpoint.plist`` where the
  daemon reads it. Its keys come from the daemon's settings table and its values are checked by the
  daemon's own parser. It never carries the enroll secret itself (managed preferences are readable by
  every local user), only ``enroll_secret_file``, the path of a root-only file an MDM script writes.
- **pppc**: Privacy Preferences Policy Control (``com.apple.TCC.configuration-profile-policy``) granting
  Full Disk Access (``SystemPolicyAllFiles``) to the daemon's executable by its path and its code
  requirement (the organisation's Developer ID team), so it can read the agents' config files in homes.
- **notifications**: notifications allowed for the companion app's bundle id (a parameter,
  ``COMPANION_BUNDLE_ID`` by default: the bundle the package ships).

PayloadUUIDs are uuid5 of a fixed namespace and the organisation's identifier, so generating a profile
again gives the same UUIDs and an MDM replaces the installed profile instead of adding a second one.
Every profile is checked against ``PAYLOAD_KEYS``, a table of the keys Apple's Device Management
reference documents for each payload type (required or not, and their value types).

Run ``python -m installers.macos.profiles --help`` to write them for an organisation.
"""

from __future__ import annotations

import argparse
import json
import plistlib
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from endpoint.service.settings import SettingsError, StaticSource, load_settings
from endpoint.service.settings_table import MANAGED_SETTINGS, SettingDoc

#: the managed-preferences domain the daemon reads (endpoint.service._managed_macos.DOMAIN)
DOMAIN = "dev.agentroster.endpoint"
#: where the package installs the daemon's executable (the real file, not the /usr/local/bin link):
#: TCC matches a path identity against the executable the process runs
DAEMON_EXECUTABLE = "/usr/local/agentroster/agentroster"
#: the code-signing identifier the CI workflow signs the executable with (codesign --identifier)
CODESIGN_IDENTIFIER = "dev.agentroster.endpoint"
#: the bundle id of the employee-facing companion app (installers/freeze/companion.spec makes the bundle)
COMPANION_BUNDLE_ID = "dev.agentroster.companion"
#: where the docs' MDM script puts the enroll secret (root-only, inside the daemon's data dir)
DEFAULT_SECRET_FILE = "/Library/Application Support/agentroster/enroll.secret"
#: settings a profile never carries: the secret (world-readable there) and the test-only scan root
NOT_IN_PROFILES = frozenset({"enroll_secret"})
#: fixed once: the root of every PayloadUUID (changing it would make every MDM install profiles twice)
UUID_NAMESPACE = uuid.UUID("6f1d3b52-8c2e-5a47-9e0b-2d4c7a1f9e63")

_ORG_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_TEAM_ID_RE = re.compile(r"^[A-Z0-9]{10}$")
_BUNDLE_ID_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class ProfileError(ValueError):
    """A profile cannot be made from these parameters; the message says which one and what to do."""


# ---- Apple's payload keys ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """One documented key: its plist type, whether Apple marks it required, and the values it takes.

    A dict value has either ``fields`` (known keys) or ``each`` (free keys such as preference domains,
    each value checked by ``each``); a list holds dicts with ``fields`` or values checked by ``each``."""

    kind: type
    required: bool = False
    one_of: tuple[object, ...] = ()
    fields: Mapping[str, Key] | None = None
    each: Key | None = None
    key_one_of: tuple[str, ...] = ()


_STR = Key(str)
_BOOL = Key(bool)

#: the top level of every profile (Apple: TopLevel)
TOP_LEVEL_KEYS: Mapping[str, Key] = {
    "PayloadContent": Key(list, required=True),
    "PayloadDescription": _STR,
    "PayloadDisplayName": _STR,
    "PayloadIdentifier": Key(str, required=True),
    "PayloadOrganization": _STR,
    "PayloadRemovalDisallowed": _BOOL,
    "PayloadScope": Key(str, one_of=("System", "User")),
    "PayloadType": Key(str, required=True, one_of=("Configuration",)),
    "PayloadUUID": Key(str, required=True),
    "PayloadVersion": Key(int, required=True, one_of=(1,)),
    "PayloadExpirationDate": Key(datetime),
    "RemovalDate": Key(datetime),
    "DurationUntilRemoval": Key(float),
    "ConsentText": Key(dict, each=_STR),
}

#: the keys every payload in PayloadContent has (Apple: CommonPayloadKeys)
COMMON_PAYLOAD_KEYS: Mapping[str, Key] = {
    "PayloadDescription": _STR,
    "PayloadDisplayName": _STR,
    "PayloadIdentifier": Key(str, required=True),
    "PayloadOrganization": _STR,
    "PayloadType": Key(str, required=True),
    "PayloadUUID": Key(str, required=True),
    "PayloadVersion": Key(int, required=True),
}

_MCX_SETTINGS = Key(list, fields={"mcx_preference_settings": Key(dict, required=True)})
#: the services a PPPC payload may name (Apple: PrivacyPreferencesPolicyControl.Services)
TCC_SERVICES = ("Accessibility", "AddressBook", "AppleEvents", "BluetoothAlways", "Calendar", "Camera",
                "FileProviderPresence", "ListenEvent", "MediaLibrary", "Microphone", "Photos",
                "PostEvent", "Reminders", "ScreenCapture", "SpeechRecognition", "SystemPolicyAllFiles",
                "SystemPolicyAppBundles", "SystemPolicyAppData", "SystemPolicyDesktopFolder",
                "SystemPolicyDocumentsFolder", "SystemPolicyDownloadsFolder", "SystemPolicyNetworkVolumes",
                "SystemPolicyRemovableVolumes", "SystemPolicySysAdminFiles")
_TCC_IDENTITY: Mapping[str, Key] = {
    "Identifier": Key(str, required=True),
    "IdentifierType": Key(str, required=True, one_of=("bundleID", "path")),
    "CodeRequirement": Key(str, required=True),
    "Allowed": _BOOL,
    "Authorization": Key(str, one_of=("Allow", "Deny", "AllowStandardUserToSetSystemService")),
    "StaticCode": _BOOL,
    "Comment": _STR,
    "AEReceiverIdentifier": _STR,
    "AEReceiverIdentifierType": Key(str, one_of=("bundleID", "path")),
    "AEReceiverCodeRequirement": _STR,
}
_NOTIFICATION_ITEM: Mapping[str, Key] = {
    "BundleIdentifier": Key(str, required=True),
    "NotificationsEnabled": _BOOL,
    "ShowInNotificationCenter": _BOOL,
    "ShowInLockScreen": _BOOL,
    "AlertType": Key(int, one_of=(0, 1, 2)),  # none, temporary banner, persistent banner
    "BadgesEnabled": _BOOL,
    "SoundsEnabled": _BOOL,
    "ShowInCarPlay": _BOOL,
    "CriticalAlertEnabled": _BOOL,
    "GroupingType": Key(int, one_of=(0, 1, 2)),
    "PreviewType": Key(int, one_of=(0, 1, 2)),
}

#: each payload type's own keys, besides COMMON_PAYLOAD_KEYS (Apple's Device Management reference:
#: ManagedPreferences, PrivacyPreferencesPolicyControl, Notifications)
PAYLOAD_KEYS: Mapping[str, Mapping[str, Key]] = {
    "com.apple.ManagedClient.preferences": {
        "PayloadContent": Key(dict, required=True, each=Key(dict, fields={
            "Forced": _MCX_SETTINGS, "Set-Once": _MCX_SETTINGS})),
    },
    "com.apple.TCC.configuration-profile-policy": {
        "Services": Key(dict, required=True, key_one_of=TCC_SERVICES,
                        each=Key(list, fields=_TCC_IDENTITY)),
    },
    "com.apple.notificationsettings": {
        "NotificationSettings": Key(list, required=True, fields=_NOTIFICATION_ITEM),
    },
}


def _type_name(kind: type) -> str:
    return {str: "string", int: "integer", float: "real", bool: "boolean", list: "array", dict: "dictionary",
            bytes: "data", datetime: "date"}.get(kind, kind.__name__)


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # a plist <real> may be written as an integer
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check(value: object, key: Key, where: str, problems: list[str]) -> None:
    if not _is(value, key.kind):
        problems.append(f"{where}: must be {_type_name(key.kind)}, is {type(value).__name__}")
        return
    if key.one_of and value not in key.one_of:
        problems.append(f"{where}: must be one of {', '.join(map(str, key.one_of))}, is {value!r}")
    if isinstance(value, dict):
        if key.fields is not None:
            _check_fields(value, key.fields, where, problems)
        elif key.each is not None:
            for name, item in value.items():
                if key.key_one_of and name not in key.key_one_of:
                    problems.append(f"{where}: {name!r} is not a key Apple documents here")
                _check(item, key.each, f"{where}.{name}", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if key.fields is not None:
                if not isinstance(item, dict):
                    problems.append(f"{where}[{i}]: must be dictionary, is {type(item).__name__}")
                else:
                    _check_fields(item, key.fields, f"{where}[{i}]", problems)
            elif key.each is not None:
                _check(item, key.each, f"{where}[{i}]", problems)


def _check_fields(values: Mapping[str, object], keys: Mapping[str, Key], where: str, problems: list[str]) -> None:
    for name, key in keys.items():
        if key.required and name not in values:
            problems.append(f"{where}: the required key {name} is missing")
    for name, value in values.items():
        if name not in keys:
            problems.append(f"{where}: {name} is not a key Apple documents here")
        else:
            _check(value, keys[name], f"{where}.{name}", problems)


def _uuid_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return "is not a string"
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return "is not a UUID"
    return None if str(parsed).upper() == text else "is not an upper-case canonical UUID"


def validate_profile(profile: Mapping[str, Any]) -> list[str]:
    """What is wrong with a profile against Apple's documented keys; an empty list when nothing is.

    Besides each key's type and whether it is required: PayloadUUIDs are UUIDs and unique within the
    profile, PayloadIdentifiers are unique, a PPPC identity has Authorization or Allowed but not both."""
    if not isinstance(profile, dict):
        return [f"profile: must be dictionary, is {type(profile).__name__}"]
    problems: list[str] = []
    _check_fields(profile, TOP_LEVEL_KEYS, "profile", problems)
    uuids: list[object] = [profile.get("PayloadUUID")]
    identifiers: list[object] = [profile.get("PayloadIdentifier")]
    content = profile.get("PayloadContent")
    for i, payload in enumerate(content if isinstance(content, list) else []):
        where = f"PayloadContent[{i}]"
        if not isinstance(payload, dict):
            problems.append(f"{where}: must be dictionary, is {type(payload).__name__}")
            continue
        payload_type = payload.get("PayloadType")
        own = PAYLOAD_KEYS.get(payload_type) if isinstance(payload_type, str) else None
        if own is None:
            problems.append(f"{where}: PayloadType {payload_type!r} is not one this table knows")
            own = {}
        _check_fields(payload, {**COMMON_PAYLOAD_KEYS, **own}, where, problems)
        uuids.append(payload.get("PayloadUUID"))
        identifiers.append(payload.get("PayloadIdentifier"))
        services = payload.get("Services")
        for service, identities in (services.items() if isinstance(services, dict) else ()):
            for j, identity in enumerate(identities if isinstance(identities, list) else []):
                if isinstance(identity, dict) and ("Allowed" in identity) == ("Authorization" in identity):
                    problems.append(f"{where}.Services.{service}[{j}]: needs Authorization or Allowed, not both")
    for text in uuids:
        found = _uuid_problem(text)
        if found:
            problems.append(f"PayloadUUID {text!r} {found}")
    if len(set(map(str, uuids))) != len(uuids):
        problems.append("PayloadUUIDs are not unique within the profile")
    if len(set(map(str, identifiers))) != len(identifiers):
        problems.append("PayloadIdentifiers are not unique within the profile")
    return problems


# ---- making the profiles -------------------------------------------------------------------------


def _check_org(org: str) -> str:
    if not _ORG_RE.match(org):
        raise ProfileError(f"the organisation identifier {org!r} is not reverse-DNS; give one such as com.example")
    return org


def payload_uuid(org: str, name: str) -> str:
    """A PayloadUUID that is the same every time for this organisation and payload name."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"{_check_org(org)}/{name}")).upper()


@dataclass(frozen=True, slots=True)
class Profile:
    """A profile's short name (its file is ``agentroster-<name>.mobileconfig``) and its plist."""

    name: str
    plist: dict[str, Any] = field(repr=False)

    @property
    def filename(self) -> str:
        return f"agentroster-{self.name}.mobileconfig"


def _profile(org: str, name: str, display: str, description: str, organization: str,
             payloads: Sequence[tuple[str, str, dict[str, Any]]]) -> Profile:
    top_id = f"{_check_org(org)}.agentroster.{name}"
    content = []
    for payload_type, payload_display, own in payloads:
        content.append({
            "PayloadType": payload_type,
            "PayloadIdentifier": f"{top_id}.{payload_type}",
            "PayloadUUID": payload_uuid(org, f"{name}/{payload_type}"),
            "PayloadVersion": 1,
            "PayloadDisplayName": payload_display,
            "PayloadOrganization": organization,
            **own,
        })
    plist = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": top_id,
        "PayloadUUID": payload_uuid(org, name),
        "PayloadDisplayName": display,
        "PayloadDescription": description,
        "PayloadOrganization": organization,
        "PayloadScope": "System",
        "PayloadRemovalDisallowed": True,
        "PayloadContent": content,
    }
    return Profile(name, plist)


def plist_value(doc: SettingDoc, text: str) -> object:
    """A setting typed on a command line (``--set name=value``) as the plist type the daemon expects."""
    if doc.kind in ("seconds", "number"):
        try:
            number = float(text)
        except ValueError:
            raise ProfileError(f"{doc.name}: expected a number, got {text!r}") from None
        return int(number) if number.is_integer() else number
    if doc.kind == "size":
        return int(text) if text.strip().isdigit() else text.strip()
    if doc.kind == "list":
        return [part for part in re.split(r"[\s,]+", text) if part]
    return text


def managed_settings(collector_url: str, enroll_secret_file: str = DEFAULT_SECRET_FILE,
                     extra: Mapping[str, object] | None = None) -> dict[str, object]:
    """The managed preferences for the daemon's domain, checked by the daemon's own settings parser."""
    values: dict[str, object] = {"collector_url": collector_url, "enroll_secret_file": enroll_secret_file}
    known = {doc.name for doc in MANAGED_SETTINGS} - NOT_IN_PROFILES
    for name, value in (extra or {}).items():
        if name == "enroll_secret":
            raise ProfileError("enroll_secret cannot go in a profile: managed preferences can be read by every "
                               "local user. Deliver it as a root-only file and set enroll_secret_file instead")
        if name not in known:
            raise ProfileError(f"{name!r} is not a managed setting; known: {', '.join(sorted(known))}")
        values[name] = value
    try:
        load_settings(cli={}, env={}, managed=StaticSource(values, "profile"), platform="macos")
    except SettingsError as exc:
        raise ProfileError(str(exc)) from None
    return values


def settings_profile(org: str, values: Mapping[str, object], *, organization: str = "") -> Profile:
    """The managed preferences for ``dev.agentroster.endpoint`` (``values`` from ``managed_settings``)."""
    content = {DOMAIN: {"Forced": [{"mcx_preference_settings": dict(values)}]}}
    return _profile(org, "settings", "agentroster endpoint settings",
                    "Where the agentroster daemon reports, and how it runs.", organization or org,
                    [("com.apple.ManagedClient.preferences", "agentroster endpoint settings",
                      {"PayloadContent": content})])


def code_requirement(team_id: str, identifier: str = CODESIGN_IDENTIFIER) -> str:
    """The designated requirement of the daemon signed with the team's Developer ID Application
    certificate: Apple's anchor, Developer ID's intermediate and leaf markers, and the team."""
    if not _TEAM_ID_RE.match(team_id):
        raise ProfileError(f"the team id {team_id!r} is not 10 capital letters and digits (the OU of the "
                           "Developer ID certificate, shown in the Apple Developer account)")
    return (f'identifier "{identifier}" and anchor apple generic'
            " and certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */"
            " and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */"
            f' and certificate leaf[subject.OU] = "{team_id}"')


def pppc_profile(org: str, team_id: str, *, executable: str = DAEMON_EXECUTABLE,
                 organization: str = "") -> Profile:
    """Full Disk Access for the daemon's executable, by path and code requirement."""
    identity = {
        "Identifier": executable,
        "IdentifierType": "path",  # a plain executable, not an app bundle: Apple wants its path
        "CodeRequirement": code_requirement(team_id),
        "Authorization": "Allow",
        "StaticCode": False,
        "Comment": "agentroster reads AI agents' config files in every home",
    }
    return _profile(org, "pppc", "agentroster Full Disk Access",
                    "Lets the agentroster daemon read the AI agents' configuration files in users' homes.",
                    organization or org,
                    [("com.apple.TCC.configuration-profile-policy", "agentroster Full Disk Access",
                      {"Services": {"SystemPolicyAllFiles": [identity]}})])


def notifications_profile(org: str, bundle_id: str = COMPANION_BUNDLE_ID, *, organization: str = "") -> Profile:
    """Notifications allowed (banners, Notification Center) for the companion app that nudges employees."""
    if not _BUNDLE_ID_RE.match(bundle_id):
        raise ProfileError(f"the bundle id {bundle_id!r} is not reverse-DNS (such as com.example.app)")
    item = {"BundleIdentifier": bundle_id, "NotificationsEnabled": True, "ShowInNotificationCenter": True,
            "ShowInLockScreen": False, "AlertType": 1, "BadgesEnabled": True, "SoundsEnabled": False}
    return _profile(org, "notifications", "agentroster notifications",
                    "Lets the agentroster companion tell employees about agents that need their attention.",
                    organization or org, [("com.apple.notificationsettings", "agentroster notifications",
                                           {"NotificationSettings": [item]})])


def jamf_manifest() -> dict[str, Any]:
    """A JSON schema for Jamf Pro's "Application & Custom Settings > External Applications" form, one
    property per managed setting the profile may carry."""
    properties: dict[str, Any] = {}
    for doc in MANAGED_SETTINGS:
        if doc.name in NOT_IN_PROFILES:
            continue
        prop: dict[str, Any] = {"title": doc.name, "description": doc.summary}
        if doc.kind in ("seconds", "number"):
            prop["type"] = "number"
        elif doc.kind == "size":
            prop["type"] = "integer"
        elif doc.kind == "list":
            prop.update(type="array", uniqueItems=True, items={"type": "string", "enum": list(doc.choices)})
        else:
            prop["type"] = "string"
            if doc.choices:
                prop["enum"] = list(doc.choices)
        if doc.low is not None:
            prop["exclusiveMinimum"] = doc.low
        if doc.high is not None:
            prop["maximum"] = doc.high
        if doc.default and doc.kind in ("seconds", "number", "size"):
            number = float(doc.default)
            prop["default"] = int(number) if number.is_integer() else number
        elif doc.default and doc.kind == "list":
            prop["default"] = doc.default.split(", ")
        elif doc.default and doc.kind == "choice":
            prop["default"] = doc.default
        properties[doc.name] = prop
    return {"title": f"agentroster endpoint ({DOMAIN})",
            "description": "The agentroster daemon's managed settings; the enroll secret goes in a root-only "
                           "file named by enroll_secret_file, never here.",
            "properties": properties}


def write_profile(profile: Profile, directory: Path) -> Path:
    """Writes the profile as XML after checking it; ``ProfileError`` lists what Apple would refuse."""
    problems = validate_profile(profile.plist)
    if problems:
        raise ProfileError(f"{profile.filename}: " + "; ".join(problems))
    path = directory / profile.filename
    path.write_bytes(plistlib.dumps(profile.plist, fmt=plistlib.FMT_XML, sort_keys=True))
    return path


def write_all(directory: Path, org: str, *, collector_url: str | None = None,
              enroll_secret_file: str = DEFAULT_SECRET_FILE, extra: Mapping[str, object] | None = None,
              team_id: str | None = None, companion_bundle_id: str = COMPANION_BUNDLE_ID,
              organization: str = "") -> list[Path]:
    """Every profile these parameters allow (settings needs a collector URL, PPPC a team id), the plain
    settings plist (Jamf's plist upload, Intune's preference file) and the Jamf JSON schema manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if collector_url is not None:
        values = managed_settings(collector_url, enroll_secret_file, extra)
        written.append(write_profile(settings_profile(org, values, organization=organization), directory))
        plain = directory / f"{DOMAIN}.plist"
        plain.write_bytes(plistlib.dumps(values, fmt=plistlib.FMT_XML, sort_keys=True))
        written.append(plain)
    if team_id is not None:
        written.append(write_profile(pppc_profile(org, team_id, organization=organization), directory))
    written.append(write_profile(notifications_profile(org, companion_bundle_id, organization=organization),
                                 directory))
    manifest = directory / f"{DOMAIN}.json"
    manifest.write_text(json.dumps(jamf_manifest(), indent=2) + "\n", encoding="utf-8")
    written.append(manifest)
    return written


def _extra_settings(pairs: Sequence[str]) -> dict[str, object]:
    by_name = {doc.name: doc for doc in MANAGED_SETTINGS}
    extra: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ProfileError(f"--set {pair!r}: expected name=value")
        doc = by_name.get(name.strip())
        extra[name.strip()] = text if doc is None else plist_value(doc, text)  # unknown: managed_settings says so
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installers.macos.profiles",
                                     description="Write the agentroster configuration profiles for an MDM.")
    parser.add_argument("--org", required=True, help="the organisation's reverse-DNS identifier (com.example)")
    parser.add_argument("--organization", default="", help="the organisation's name shown on the Mac")
    parser.add_argument("--collector-url", help="the collector, https://host[:port][/path]")
    parser.add_argument("--enroll-secret-file", default=DEFAULT_SECRET_FILE,
                        help=f"the root-only file the MDM script writes the secret to ({DEFAULT_SECRET_FILE})")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another managed setting (docs/endpoint-settings.md); repeatable")
    parser.add_argument("--team-id", help="the Developer ID team that signs the daemon (for the PPPC profile)")
    parser.add_argument("--companion-bundle-id", default=COMPANION_BUNDLE_ID)
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the profiles to")
    args = parser.parse_args(argv)
    try:
        written = write_all(args.out, args.org, collector_url=args.collector_url,
                            enroll_secret_file=args.enroll_secret_file, extra=_extra_settings(args.set),
                            team_id=args.team_id, companion_bundle_id=args.companion_bundle_id,
                            organization=args.organization)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
