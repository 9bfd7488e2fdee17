"""IT's mapping file: IdP groups (and Entra app roles) to platform roles and product grants.

docs/rules.md#mapping-rules, #platform-role, #grants-and-product-states and
#client-identities. The file is TOML::

    default_role = "member"        # role of a user in no role-mapped group
    owner_fallback_role = "admin"  # role a held third Owner acts with
    client_domains = ["clients.example.com"]  # email domains of Portal clients
    map_scim_roles = false         # true: Entra app roles map through scim_role rules

    [[rules]]
    group = "Hub Owners"           # IdP group: externalId, or displayName, case-insensitively
    role = "owner"

    [[rules]]
    group = "PSA Technicians"
    product = "psa"
    product_roles = ["technician"]
    permissions = ["psa.tickets.read", "psa.tickets.create"]

    [[rules]]
    scim_role = "hub-admin"        # an Entra app role value; needs map_scim_roles = true
    role = "admin"

    [[rules]]
    when = 'userType eq "Contractor"'  # a SCIM filter over the user's attributes
    role = "viewer"

A rule names exactly one of ``group``, ``scim_role`` or ``when``, and maps a
``role``, a ``product`` grant, or both. Optional per rule: ``name`` (shown in sources
and audit) and ``access`` ("staff", the only mode a rule may grant).

:func:`parse_mapping` refuses a bad file whole with one :class:`MappingError`
listing every problem with its line. :func:`bind_rules` binds each group
reference to the group it first matches and keeps it there when the IdP
renames the group.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scim.resources import User
from scim2_models import Resource

from connector.access._source_lines import SourceLines
from connector.access._text import quote
from connector.access.catalog import HUB_CATALOG, AccessMode, Catalog
from connector.access.conditions import Condition, ConditionError, parse_condition
from connector.access.roles import Role
from connector.errors import InvalidMapping

TOP_LEVEL_KEYS = (
    "default_role",
    "owner_fallback_role",
    "client_domains",
    "map_scim_roles",
    "rules",
)
RULE_KEYS = (
    "name",
    "group",
    "scim_role",
    "when",
    "role",
    "product",
    "product_roles",
    "permissions",
    "access",
)

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_TOML_LOCATION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_TOML_END = re.compile(r"\s*\(at end of document\)$")


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong in a mapping file, at ``line`` (1-based) when known."""

    line: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


class MappingError(InvalidMapping):
    """A mapping file refused whole; ``problems`` lists all of them, in line order."""

    def __init__(self, problems: Iterable[MappingProblem], source: str = "mapping") -> None:
        self.problems = tuple(
            sorted(problems, key=lambda p: (p.line is None, p.line or 0, p.message))
        )
        self.source = source
        lines = [
            f"{source}:{p.line}: {p.message}" if p.line is not None else f"{source}: {p.message}"
            for p in self.problems
        ]
        count = len(self.problems)
        header = f"{source}: refused, {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([header, *lines]))

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "problems": [p.to_json() for p in self.problems]}


@dataclass(frozen=True)
class ProductGrant:
    """Product roles and permissions of one product, as a rule or IT grants them."""

    product: str
    product_roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "product_roles": sorted(self.product_roles),
            "permissions": sorted(self.permissions),
        }


def group_ref_key(ref: str) -> str:
    """How group references and SCIM role values compare: trimmed, case-insensitively."""
    return ref.strip().casefold()


@dataclass(frozen=True)
class MappingRule:
    """One ``[[rules]]`` table; ``number`` is its 1-based position in the file."""

    number: int
    group: str | None = None
    scim_role: str | None = None
    role: Role | None = None
    grant: ProductGrant | None = None
    name: str | None = None
    line: int | None = field(default=None, compare=False)
    condition: Condition | None = None

    @property
    def group_key(self) -> str | None:
        """The binding key of the group this rule names (:func:`group_ref_key`)."""
        return None if self.group is None else group_ref_key(self.group)

    def describe(self) -> str:
        """How sources and audit name the rule: ``rule 2 (group "PSA Technicians")``."""
        if self.group is not None:
            subject = f"group {quote(self.group)}"
        elif self.condition is not None:
            subject = f"when {self.condition.text}"
        else:
            subject = f"SCIM role {quote(self.scim_role)}"
        label = f" {quote(self.name)}" if self.name else ""
        return f"rule {self.number}{label} ({subject})"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.number, "line": self.line}
        if self.name is not None:
            data["name"] = self.name
        if self.group is not None:
            data["group"] = self.group
        if self.scim_role is not None:
            data["scim_role"] = self.scim_role
        if self.condition is not None:
            data["when"] = self.condition.text
        if self.role is not None:
            data["role"] = self.role.value
        if self.grant is not None:
            data.update(self.grant.to_json())
        return data


@dataclass(frozen=True)
class MappingConfig:
    """An organization's mapping rules in force; the defaults are an org with no file."""

    default_role: Role = Role.MEMBER
    owner_fallback_role: Role = Role.ADMIN
    client_domains: frozenset[str] = frozenset()
    map_scim_roles: bool = False
    rules: tuple[MappingRule, ...] = ()

    @property
    def group_keys(self) -> tuple[str, ...]:
        """The distinct group references of the rules, as binding keys, in file order."""
        keys = (rule.group_key for rule in self.rules if rule.group_key is not None)
        return tuple(dict.fromkeys(keys))

    @property
    def conditions(self) -> tuple[tuple[int, Condition], ...]:
        """The rules matching on the user's attributes: (rule number, condition), in file order."""
        return tuple(
            (rule.number, rule.condition) for rule in self.rules if rule.condition is not None
        )

    @property
    def owner_rules(self) -> tuple[MappingRule, ...]:
        """The rules that make a user an Owner: what can change who holds a seat."""
        return tuple(rule for rule in self.rules if rule.role is Role.OWNER)

    def to_json(self) -> dict[str, Any]:
        return {
            "default_role": self.default_role.value,
            "owner_fallback_role": self.owner_fallback_role.value,
            "client_domains": sorted(self.client_domains),
            "map_scim_roles": self.map_scim_roles,
            "rules": [rule.to_json() for rule in self.rules],
        }


def parse_mapping(
    text: str,
    *,
    catalog: Catalog = HUB_CATALOG,
    source: str = "mapping",
    user_model: type[Resource[Any]] = User,
) -> MappingConfig:
    """Parse and validate a mapping file; raise :class:`MappingError` with every problem.

    ``source`` names the file in messages (``team.toml:7: rule 2: unknown role "boss"``).
    ``user_model`` is the organization's User schema, which ``when`` conditions
    are read against.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError([_syntax_problem(text, error)], source) from None
    parser = _Parser(SourceLines(text), catalog, user_model)
    config = parser.config(data)
    if parser.problems:
        raise MappingError(parser.problems, source)
    return config


def _syntax_problem(text: str, error: tomllib.TOMLDecodeError) -> MappingProblem:
    message = str(error)
    located = _TOML_LOCATION.search(message)
    if located is not None:
        return MappingProblem(int(located.group(1)), f"TOML syntax: {message[: located.start()]}")
    bare = _TOML_END.sub("", message)
    return MappingProblem(_first_failing_line(text, bare), f"TOML syntax: {bare}")


def _first_failing_line(text: str, message: str) -> int | None:
    """The first line whose prefix of the file already fails with ``message``.

    ``tomllib`` reports some errors (a key set twice) "at end of document";
    the shortest prefix failing the same way ends at the offending line.
    """
    lines = text.splitlines()
    if len(lines) > 500:  # quadratic; mapping files are a few dozen lines
        return None
    for count in range(1, len(lines) + 1):
        try:
            tomllib.loads("\n".join(lines[:count]))
        except tomllib.TOMLDecodeError as error:
            found = str(error)
            if _TOML_END.sub("", _TOML_LOCATION.sub("", found)) == message:
                return count
    return None


class _Parser:
    def __init__(
        self, lines: SourceLines, catalog: Catalog, user_model: type[Resource[Any]]
    ) -> None:
        self.lines = lines
        self.catalog = catalog
        self.user_model = user_model
        self.problems: list[MappingProblem] = []

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(MappingProblem(line, message))

    def config(self, data: dict[str, Any]) -> MappingConfig:
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.problem(
                    self.lines.key_line(None, key),
                    f"unknown key {quote(key)} (expected one of {', '.join(TOP_LEVEL_KEYS)})",
                )
        default_role = self.top_role(data, "default_role", Role.MEMBER)
        fallback_role = self.top_role(data, "owner_fallback_role", Role.ADMIN)
        domains = self.client_domains(data.get("client_domains", []))
        map_scim_roles = data.get("map_scim_roles", False)
        if not isinstance(map_scim_roles, bool):
            self.problem(
                self.lines.key_line(None, "map_scim_roles"), "map_scim_roles must be true or false"
            )
            map_scim_roles = False
        rules = self.rules(data.get("rules", []), map_scim_roles)
        return MappingConfig(default_role, fallback_role, domains, map_scim_roles, rules)

    def top_role(self, data: dict[str, Any], key: str, default: Role) -> Role:
        if key not in data:
            return default
        role = self.role(None, key, data[key])
        if role is Role.OWNER:
            self.problem(
                self.lines.key_line(None, key),
                f"{key} cannot be owner: Owners come only from mapped groups, "
                "two at most (see docs/rules.md#owner-cap)",
            )
            return default
        return default if role is None else role

    def role(self, index: int | None, key: str, value: Any) -> Role | None:
        line = self.lines.key_line(index, key) or self.rule_line(index)
        prefix = "" if index is None else f"rule {index + 1}: "
        if not isinstance(value, str):
            self.problem(line, f"{prefix}{key} must be a string")
            return None
        try:
            return Role.parse(value)
        except ValueError as error:
            self.problem(line, f"{prefix}{error}")
            return None

    def rule_line(self, index: int | None) -> int | None:
        return None if index is None else self.lines.rule_line(index)

    def client_domains(self, value: Any) -> frozenset[str]:
        line = self.lines.key_line(None, "client_domains")
        if not isinstance(value, list):
            self.problem(line, "client_domains must be a list of email domains")
            return frozenset()
        domains: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                self.problem(line, f"client domain {quote(item)} must be a string")
                continue
            domain = item.strip().lower()
            where = self.lines.value_line(None, "client_domains", item)
            if "@" in domain:
                self.problem(where, f"client domain {quote(item)} must be a domain, not an address")
            elif not _DOMAIN.match(domain):
                self.problem(where, f"client domain {quote(item)} is not a domain name")
            else:
                domains.add(domain)
        return frozenset(domains)

    def rules(self, value: Any, map_scim_roles: bool) -> tuple[MappingRule, ...]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            line = self.lines.key_line(None, "rules") or self.lines.table_line("rules")
            self.problem(line, "rules must be [[rules]] tables")
            return ()
        self.lines.expect_rules(len(value))
        rules = tuple(
            rule
            for index, table in enumerate(value)
            if (rule := self.rule(index, table, map_scim_roles)) is not None
        )
        self.check_duplicates(rules)
        return rules

    def rule(self, index: int, table: dict[str, Any], map_scim_roles: bool) -> MappingRule | None:
        number = index + 1
        header = self.lines.rule_line(index)

        def at(key: str) -> int | None:
            return self.lines.key_line(index, key) or header

        for key in table:
            if key not in RULE_KEYS:
                self.problem(
                    at(key),
                    f"rule {number}: unknown key {quote(key)} "
                    f"(expected one of {', '.join(RULE_KEYS)})",
                )
        name = self.text(index, table, "name")
        group = self.text(index, table, "group")
        scim_role = self.text(index, table, "scim_role")
        condition = self.condition(index, table)
        subjects = [key for key in ("group", "scim_role", "when") if key in table]
        if len(subjects) > 1:
            self.problem(
                at(subjects[1]),
                f"rule {number}: give one of group, scim_role or when, not "
                + " and ".join(subjects),
            )
        elif not subjects:
            self.problem(header, f"rule {number}: missing group (or scim_role, or when)")
        if "scim_role" in table and not map_scim_roles:
            self.problem(
                at("scim_role"),
                f"rule {number}: scim_role rules need map_scim_roles = true at the top of the file",
            )
        role = self.role(index, "role", table["role"]) if "role" in table else None
        if role is Role.OWNER and "when" in table:
            self.problem(
                at("role"),
                f"rule {number}: a when rule cannot map owner: Owners come only from "
                "mapped groups or SCIM roles, two at most (see docs/rules.md#owner-cap)",
            )
        grant = self.grant(index, table)
        if "role" not in table and "product" not in table:
            self.problem(header, f"rule {number}: maps nothing; give role, product, or both")
        if group is None and scim_role is None and condition is None:
            return None
        # Kept even when other parts are wrong, so duplicates are reported in the same pass.
        return MappingRule(number, group, scim_role, role, grant, name, header, condition)

    def condition(self, index: int, table: dict[str, Any]) -> Condition | None:
        """A ``when`` condition, compiled against the organization's User schema."""
        text = self.text(index, table, "when")
        if text is None:
            return None
        try:
            return parse_condition(text, self.user_model)
        except ConditionError as error:
            line = self.lines.key_line(index, "when") or self.lines.rule_line(index)
            self.problem(line, f"rule {index + 1}: when {quote(text)} {error}")
            return None

    def text(self, index: int, table: dict[str, Any], key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            line = self.lines.key_line(index, key) or self.lines.rule_line(index)
            self.problem(line, f"rule {index + 1}: {key} must be a non-empty string")
            return None
        return value

    def strings(self, index: int, table: dict[str, Any], key: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            line = self.lines.key_line(index, key) or self.lines.rule_line(index)
            self.problem(line, f"rule {index + 1}: {key} must be a list of strings")
            return []
        return value

    def grant(self, index: int, table: dict[str, Any]) -> ProductGrant | None:
        number = index + 1
        product_roles = self.strings(index, table, "product_roles")
        permissions = self.strings(index, table, "permissions")
        access = table.get("access", AccessMode.STAFF.value)
        access_line = self.lines.key_line(index, "access")
        if access == AccessMode.CLIENT.value:
            self.problem(
                access_line,
                f'rule {number}: access = "client" is refused: client access is managed by '
                "Portal's user system, and mapping rules grant staff access only "
                "(see docs/rules.md#client-identities)",
            )
        elif access != AccessMode.STAFF.value:
            self.problem(
                access_line, f'rule {number}: unknown access {quote(access)} (expected "staff")'
            )
        product = table.get("product")
        if product is None:
            for key in ("product_roles", "permissions", "access"):
                if key in table:
                    self.problem(
                        self.lines.key_line(index, key), f"rule {number}: {key} needs a product"
                    )
            return None
        if not isinstance(product, str):
            self.problem(
                self.lines.key_line(index, "product"), f"rule {number}: product must be a string"
            )
            return None
        problems = self.catalog.grant_problems(product, product_roles, permissions)
        for found in problems:
            line = (
                self.lines.key_line(index, found.field)
                if found.field == "product"
                else self.lines.value_line(index, found.field, found.value)
            )
            self.problem(line, f"rule {number}: {found.message}")
        if any(found.field == "product" for found in problems):
            return None
        return ProductGrant(product, frozenset(product_roles), frozenset(permissions))

    def check_duplicates(self, rules: tuple[MappingRule, ...]) -> None:
        """One role per group and one grant per group and product; a second is a mistake."""
        seen: dict[tuple[str, str, str], MappingRule] = {}
        for rule in rules:
            if rule.group is not None:
                kind, ref = "group", rule.group
            elif rule.condition is not None:
                kind, ref = "when", rule.condition.text
            else:
                kind, ref = "scim_role", rule.scim_role or ""
            targets = []
            if rule.role is not None:
                targets.append("a role")
            if rule.grant is not None:
                targets.append(f"product {quote(rule.grant.product)}")
            for what in targets:
                first = seen.setdefault((kind, group_ref_key(ref), what), rule)
                if first is not rule:
                    self.problem(
                        rule.line,
                        f"rule {rule.number} duplicates rule {first.number} (line {first.line}): "
                        f"{kind} {quote(_subject(first))} already maps {what}",
                    )


def _subject(rule: MappingRule) -> str:
    """What a rule matches on, as IT wrote it: its group, SCIM role or condition."""
    if rule.condition is not None:
        return rule.condition.text
    return rule.group or rule.scim_role or ""


@dataclass(frozen=True)
class GroupRef:
    """What binding needs of a SCIM Group: its id, externalId and displayName."""

    id: str
    external_id: str | None
    display_name: str


@dataclass(frozen=True)
class RuleBindings:
    """Which group each rule's group reference is bound to.

    ``by_key`` (group reference key to group id) is what the persistence layer
    stores; ``newly_bound`` is the part of it this call added; ``unmatched``
    are references no group matches yet; ``ambiguous`` maps a reference to the
    several groups it matches (bound to none until IT disambiguates, for
    example by writing the externalId).
    """

    by_key: Mapping[str, str]
    newly_bound: Mapping[str, str]
    unmatched: tuple[str, ...]
    ambiguous: Mapping[str, tuple[str, ...]]

    def by_rule(self, config: MappingConfig) -> dict[int, str]:
        """Rule number to the id of the group it is bound to."""
        return rule_groups(config, self.by_key)


def bind_rules(
    config: MappingConfig,
    groups: Iterable[GroupRef],
    existing: Mapping[str, str] | None = None,
) -> RuleBindings:
    """Bind each group reference of ``config`` to a group (docs/rules.md#mapping-rules).

    A reference already in ``existing`` keeps its group whatever the group is
    called now: that is how a rule survives an IdP rename. Other references
    bind to the group whose externalId matches, else whose displayName
    matches, case-insensitively. ``groups`` may be every group of the org or
    just those a SCIM write created or renamed; bindings for references no
    longer in ``config`` are dropped. Groups deleted from the directory must be
    dropped from ``existing`` by the caller (a foreign key does it).
    """
    existing = existing or {}
    by_key = {key: existing[key] for key in config.group_keys if key in existing}
    wanted = [key for key in config.group_keys if key not in by_key]
    by_external: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for group in groups:
        if group.external_id:
            by_external.setdefault(group_ref_key(group.external_id), []).append(group.id)
        by_name.setdefault(group_ref_key(group.display_name), []).append(group.id)
    newly_bound: dict[str, str] = {}
    unmatched: list[str] = []
    ambiguous: dict[str, tuple[str, ...]] = {}
    for key in wanted:
        candidates = sorted(set(by_external.get(key, []))) or sorted(set(by_name.get(key, [])))
        if len(candidates) == 1:
            newly_bound[key] = candidates[0]
        elif candidates:
            ambiguous[key] = tuple(candidates)
        else:
            unmatched.append(key)
    return RuleBindings({**by_key, **newly_bound}, newly_bound, tuple(unmatched), ambiguous)


def rule_groups(config: MappingConfig, bindings: Mapping[str, str]) -> dict[int, str]:
    """Rule number to bound group id, for the group rules whose reference is bound."""
    return {
        rule.number: bindings[rule.group_key]
        for rule in config.rules
        if rule.group_key is not None and rule.group_key in bindings
    }


def client_addresses(config: MappingConfig, addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses whose domain is one of the org's client domains.

    A SCIM create or update carrying one is refused: Portal clients are never
    staff. Domains match exactly, case-insensitively; subdomains are not
    implied (declare each one). docs/rules.md#client-identities.
    """
    found = []
    for address in addresses:
        _, at, domain = address.strip().rpartition("@")
        if at and domain.lower() in config.client_domains:
            found.append(address)
    return tuple(found)
