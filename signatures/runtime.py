"""The signatures as plain named tuples: the form that matching and the endpoint use at run time.

``signatures.schema`` (pydantic) validates pack files; what it accepted is dumped to plain data, and
``build()`` turns that data (a fresh dump, or the on-disk cache of one) into these objects without
importing pydantic. Fields, names and defaults mirror the schema's models one for one.
"""

# No ``from __future__ import annotations``: NamedTuple would turn every string annotation into a
# ForwardRef at import, and this module is on the path of every start.
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

ALL_PLATFORMS = ("linux", "macos", "windows")

Data = Mapping[str, Any]


class ProcessMatcher(NamedTuple):
    """How a running process is recognised (see ``signatures.schema.ProcessMatcher``)."""

    names: list[str] = []
    cmdline: list[str] = []
    exe: list[str] = []
    exclude: list[str] = []
    script_imports: list[str] = []
    child_env: list[str] = []
    platforms: list[str] = []


class FileMatcher(NamedTuple):
    """A file or directory that belongs to an agent: a path template and the dialect to parse it with."""

    path: str
    dialect: str = "none"
    scope: str = "user"
    platforms: list[str] = []


class Packages(NamedTuple):
    pypi: list[str] = []
    npm: list[str] = []


class NetworkMatcher(NamedTuple):
    hosts: list[str] = []
    ports: list[int] = []


class SettingMarker(NamedTuple):
    """A config key whose value switches human approval off."""

    key: str
    equals: str | bool | int | list[str] | None = None
    contains: str | None = None
    dialects: list[str] = []


class Autonomy(NamedTuple):
    flags: list[str] = []
    settings: list[SettingMarker] = []
    env: list[str] = []


class Case(NamedTuple):
    """One test input of a signature; exactly one of the kinds is set."""

    process: str | None = None
    exe: str | None = None
    path: str | None = None
    extension: str | None = None
    package: str | None = None
    host: str | None = None
    autonomous_cmdline: str | None = None
    autonomous_settings: dict[str, object] | None = None
    dialect: str | None = None
    script: str | None = None
    platform: str | None = None
    project: dict[str, str] | None = None  # with process: the files of the project it runs in


class Cases(NamedTuple):
    match: list[Case] = []
    no_match: list[Case] = []


class Risk(NamedTuple):
    reaches: list[str] = []
    write: bool = False


class Signature(NamedTuple):
    id: str
    name: str
    vendor: str
    type: str
    status: str = "test"
    description: str = ""
    references: list[str] = []
    platforms: list[str] = list(ALL_PLATFORMS)
    process: ProcessMatcher = ProcessMatcher()
    files: list[FileMatcher] = []
    apps: list[str] = []
    extensions: list[str] = []
    packages: Packages = Packages()
    network: NetworkMatcher = NetworkMatcher()
    providers: list[str] = []
    autonomy: Autonomy = Autonomy()
    risk: Risk = Risk()
    cases: Cases = Cases()


class Provider(NamedTuple):
    """An LLM API provider: the hosts its API is served on."""

    id: str
    name: str
    hosts: list[str]
    credential: str | None = None
    local: bool = False
    ports: list[int] = []
    references: list[str] = []


class ValueCases(NamedTuple):
    match: list[str] = []
    no_match: list[str] = []


class CredentialKind(NamedTuple):
    """A kind of secret: recognised by its value's shape or by the variable or key that holds it."""

    id: str
    name: str
    patterns: list[str] = []
    env: list[str] = []
    references: list[str] = []
    cases: ValueCases = ValueCases()


# -- building from validated data ------------------------------------------------------------------
# The data was validated by the schema (or is the cache of data that was): keys may be left out where
# they hold their default, and nothing else is checked here.


def _strs(data: Data, key: str) -> list[str]:
    return list(data.get(key) or ())


def _process(data: Data) -> ProcessMatcher:
    return ProcessMatcher(names=_strs(data, "names"), cmdline=_strs(data, "cmdline"), exe=_strs(data, "exe"),
                          exclude=_strs(data, "exclude"), script_imports=_strs(data, "script_imports"),
                          child_env=_strs(data, "child_env"), platforms=_strs(data, "platforms"))


def _file(data: Data) -> FileMatcher:
    return FileMatcher(path=data["path"], dialect=data.get("dialect", "none"), scope=data.get("scope", "user"),
                       platforms=_strs(data, "platforms"))


def _marker(data: Data) -> SettingMarker:
    equals = data.get("equals")
    return SettingMarker(key=data["key"], equals=list(equals) if isinstance(equals, list) else equals,
                         contains=data.get("contains"), dialects=_strs(data, "dialects"))


def _autonomy(data: Data) -> Autonomy:
    return Autonomy(flags=_strs(data, "flags"), settings=[_marker(m) for m in data.get("settings") or ()],
                    env=_strs(data, "env"))


def _case(data: Data) -> Case:
    settings = data.get("autonomous_settings")
    return Case(process=data.get("process"), exe=data.get("exe"), path=data.get("path"),
                extension=data.get("extension"), package=data.get("package"), host=data.get("host"),
                autonomous_cmdline=data.get("autonomous_cmdline"),
                autonomous_settings=dict(settings) if settings is not None else None,
                dialect=data.get("dialect"), script=data.get("script"), platform=data.get("platform"),
                project=dict(data["project"]) if data.get("project") is not None else None)


def _cases(data: Data) -> Cases:
    return Cases(match=[_case(c) for c in data.get("match") or ()],
                 no_match=[_case(c) for c in data.get("no_match") or ()])


def signature(data: Data) -> Signature:
    """One signature from its validated data."""
    packages = data.get("packages") or {}
    network = data.get("network") or {}
    risk = data.get("risk") or {}
    platforms = data.get("platforms")
    return Signature(
        id=data["id"], name=data["name"], vendor=data["vendor"], type=data["type"],
        status=data.get("status", "test"), description=data.get("description", ""),
        references=_strs(data, "references"),
        platforms=list(platforms) if platforms is not None else list(ALL_PLATFORMS),
        process=_process(data.get("process") or {}),
        files=[_file(f) for f in data.get("files") or ()],
        apps=_strs(data, "apps"), extensions=_strs(data, "extensions"),
        packages=Packages(pypi=_strs(packages, "pypi"), npm=_strs(packages, "npm")),
        network=NetworkMatcher(hosts=_strs(network, "hosts"), ports=list(network.get("ports") or ())),
        providers=_strs(data, "providers"),
        autonomy=_autonomy(data.get("autonomy") or {}),
        risk=Risk(reaches=_strs(risk, "reaches"), write=bool(risk.get("write", False))),
        cases=_cases(data.get("cases") or {}),
    )


def provider(data: Data) -> Provider:
    return Provider(id=data["id"], name=data["name"], hosts=_strs(data, "hosts"), credential=data.get("credential"),
                    local=bool(data.get("local", False)), ports=list(data.get("ports") or ()),
                    references=_strs(data, "references"))


def credential_kind(data: Data) -> CredentialKind:
    cases = data.get("cases") or {}
    return CredentialKind(id=data["id"], name=data["name"], patterns=_strs(data, "patterns"), env=_strs(data, "env"),
                          references=_strs(data, "references"),
                          cases=ValueCases(match=_strs(cases, "match"), no_match=_strs(cases, "no_match")))


def build(packs: Sequence[Data], catalog: Data) -> tuple[list[Signature], list[Provider], list[CredentialKind]]:
    """Signatures (in pack order), providers and credential kinds from validated pack and catalog data."""
    signatures = [signature(s) for pack in packs for s in pack["signatures"]]
    providers = [provider(p) for p in catalog["providers"]]
    kinds = [credential_kind(k) for k in catalog["credentials"]]
    return signatures, providers, kinds
