"""Group Policy templates (ADMX and its en-US ADML) for every managed setting, from the settings table.

One Computer policy per setting of ``endpoint.service.settings_table.MANAGED_SETTINGS``, all under
``HKLM\\SOFTWARE\\Policies\\agentroster`` with the setting's own name as the value name: what the daemon
reads (``endpoint/service/_managed_windows.py``). The element follows the setting's kind:

- seconds, and numbers that are whole by nature (``WHOLE_NUMBERS``) → ``decimal`` (REG_DWORD);
- other numbers (fractions such as a 0.5 % CPU limit) and sizes ("50MiB") → ``text`` (REG_SZ), which
  the daemon parses as it parses any text;
- the sensors list → ``multiText`` (REG_MULTI_SZ, one sensor a line);
- the log level → ``enum`` (REG_SZ);
- URLs and paths → ``text``.

``enroll_secret`` gets no policy: every local user can read the Policies key, and the daemon refuses a
secret found there; its policy is ``enroll_secret_file``. Admins copy the two files to
``C:\\Windows\\PolicyDefinitions`` (or the domain's central store), or upload them to Intune
(Devices → Configuration → Import ADMX).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from endpoint.service.settings_table import MANAGED_SETTINGS, SettingDoc
from installers.windows.wxs import POLICY_KEY

NAMESPACE = "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions"
TARGET_NAMESPACE = "Agentroster.Policies.Endpoint"
PREFIX = "agentroster"
CATEGORY = "agentroster"
SUPPORTED = "SUPPORTED_Windows10_x64"
REVISION = "1.0"
#: settings a policy must not carry (see the module's docstring)
NOT_A_POLICY = frozenset({"enroll_secret"})
#: numbers only ever whole, entered as a REG_DWORD
WHOLE_NUMBERS = frozenset({"max_rss_mb"})
TEXT_MAX_LENGTH = "1023"
DWORD_MAX = 0xFFFFFFFF


def policy_settings() -> tuple[SettingDoc, ...]:
    return tuple(doc for doc in MANAGED_SETTINGS if doc.name not in NOT_A_POLICY)


def element_kind(doc: SettingDoc) -> str:
    """The ADMX element of a setting: decimal, text, multiText or enum."""
    if doc.kind == "seconds" or (doc.kind == "number" and doc.name in WHOLE_NUMBERS):
        return "decimal"
    if doc.kind == "list":
        return "multiText"
    if doc.kind == "choice":
        return "enum"
    return "text"


def registry_type(doc: SettingDoc) -> str:
    """What Group Policy writes for the setting's element."""
    return {"decimal": "REG_DWORD", "multiText": "REG_MULTI_SZ"}.get(element_kind(doc), "REG_SZ")


def _decimal_bounds(doc: SettingDoc) -> tuple[int, int]:
    # the daemon wants more than ``low`` (never 0 seconds): the smallest whole number above it
    low = int(doc.low) + 1 if doc.low is not None else 0
    high = min(int(doc.high), DWORD_MAX) if doc.high is not None else DWORD_MAX
    return low, high


def _explain(doc: SettingDoc) -> str:
    lines = [doc.summary, ""]
    if doc.default:
        lines.append(f"Default: {doc.default}.")
    if element_kind(doc) == "decimal":
        low, high = _decimal_bounds(doc)
        lines.append(f"A whole number from {low} to {high}.")
    elif doc.kind == "list":
        lines.append(f"One sensor per line, from: {', '.join(doc.choices)}.")
    elif doc.kind == "number":
        lines.append("A number; a fraction is written with a point (2.5).")
    elif doc.kind == "size":
        lines.append("Bytes, or a size such as 50MiB or 2GB.")
    elif doc.kind == "path":
        lines.append("An absolute path.")
    lines += ["", f"Registry: HKLM\\{POLICY_KEY}\\{doc.name} ({registry_type(doc)}). A command-line flag or "
                  f"an AGENTROSTER_{doc.name.upper()} environment variable of the service takes precedence; when "
                  "this policy is disabled or not configured, the daemon uses its default."]
    return "\n".join(lines)


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, _q(tag), attrs)
    if text is not None:
        element.text = text
    return element


def admx() -> ET.Element:
    root = ET.Element(_q("policyDefinitions"), {"revision": REVISION, "schemaVersion": "1.0"})
    namespaces = _sub(root, "policyNamespaces")
    _sub(namespaces, "target", prefix=PREFIX, namespace=TARGET_NAMESPACE)
    _sub(root, "resources", minRequiredRevision=REVISION)
    definitions = _sub(_sub(root, "supportedOn"), "definitions")
    _sub(definitions, "definition", name=SUPPORTED, displayName=f"$(string.{SUPPORTED})")
    _sub(_sub(root, "categories"), "category", name=CATEGORY, displayName=f"$(string.{CATEGORY})")
    policies = _sub(root, "policies")
    for doc in policy_settings():
        policy = _sub(policies, "policy", name=doc.name, **{"class": "Machine"},
                      displayName=f"$(string.{doc.name})", explainText=f"$(string.{doc.name}_Explain)",
                      presentation=f"$(presentation.{doc.name})", key=POLICY_KEY)
        _sub(policy, "parentCategory", ref=CATEGORY)
        _sub(policy, "supportedOn", ref=SUPPORTED)
        elements = _sub(policy, "elements")
        kind = element_kind(doc)
        if kind == "decimal":
            low, high = _decimal_bounds(doc)
            _sub(elements, "decimal", id=doc.name, valueName=doc.name, required="true", minValue=str(low),
                 maxValue=str(high))
        elif kind == "multiText":
            _sub(elements, "multiText", id=doc.name, valueName=doc.name)
        elif kind == "enum":
            enum = _sub(elements, "enum", id=doc.name, valueName=doc.name, required="true")
            for choice in doc.choices:
                item = _sub(enum, "item", displayName=f"$(string.{doc.name}_{choice})")
                _sub(_sub(item, "value"), "string", choice)
        else:
            _sub(elements, "text", id=doc.name, valueName=doc.name, required="true", maxLength=TEXT_MAX_LENGTH)
    return root


def adml() -> ET.Element:
    root = ET.Element(_q("policyDefinitionResources"), {"revision": REVISION, "schemaVersion": "1.0"})
    _sub(root, "displayName", "agentroster")
    _sub(root, "description", "Settings of the agentroster endpoint daemon (the agentroster service).")
    resources = _sub(root, "resources")
    strings = _sub(resources, "stringTable")
    _sub(strings, "string", "agentroster", id=CATEGORY)
    _sub(strings, "string", "Windows 10, Windows Server 2016 or later, 64-bit", id=SUPPORTED)
    presentations = _sub(resources, "presentationTable")
    for doc in policy_settings():
        _sub(strings, "string", doc.name, id=doc.name)
        _sub(strings, "string", _explain(doc), id=f"{doc.name}_Explain")
        presentation = _sub(presentations, "presentation", id=doc.name)
        kind = element_kind(doc)
        if kind == "decimal":
            _sub(presentation, "decimalTextBox", doc.name, refId=doc.name, defaultValue=doc.default or "0",
                 spinStep="1")
        elif kind == "multiText":
            _sub(presentation, "multiTextBox", doc.name, refId=doc.name)
        elif kind == "enum":
            for choice in doc.choices:
                _sub(strings, "string", choice, id=f"{doc.name}_{choice}")
            default = doc.choices.index(doc.default) if doc.default in doc.choices else 0
            _sub(presentation, "dropdownList", doc.name, refId=doc.name, defaultItem=str(default), noSort="true")
        else:
            box = _sub(presentation, "textBox", refId=doc.name)
            _sub(box, "label", doc.name)
            if doc.default:
                _sub(box, "defaultValue", doc.default)
    return root


def _xml(root: ET.Element) -> bytes:
    ET.register_namespace("", NAMESPACE)  # the schema's namespace as the default one, as Windows' own files do
    ET.indent(root, space="  ")
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def write_templates(folder: Path) -> list[Path]:
    """``agentroster.admx`` and ``en-US/agentroster.adml`` under ``folder`` (the layout of PolicyDefinitions)."""
    admx_path = folder / "agentroster.admx"
    adml_path = folder / "en-US" / "agentroster.adml"
    adml_path.parent.mkdir(parents=True, exist_ok=True)
    admx_path.write_bytes(_xml(admx()))
    adml_path.write_bytes(_xml(adml()))
    return [admx_path, adml_path]
