"""docs/rules.md is the reference the code, its messages and the tests point to.

Every ``docs/rules.md#<section>`` written anywhere in the repository must name a
section that exists, so that a reader (or an IT admin reading a SCIM error)
lands on the rule.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs" / "rules.md"
SEARCHED = ("connector", "scim", "tests", "bench", "docs", "deploy", "README.md")
REFERENCE = re.compile(r"rules\.md#([a-z0-9-]+)")


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def rule_anchors() -> set[str]:
    lines = RULES.read_text(encoding="utf-8").splitlines()
    return {slug(line.lstrip("#")) for line in lines if line.startswith("## ")}


def references() -> dict[str, list[str]]:
    """Anchor to the places (path:line) that cite it."""
    found: dict[str, list[str]] = {}
    for name in SEARCHED:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if path.suffix not in {".py", ".md", ".toml", ".json", ".txt"} or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for anchor in REFERENCE.findall(line):
                    where = f"{path.relative_to(ROOT)}:{number}"
                    found.setdefault(anchor, []).append(where)
    return found


def test_the_rules_have_the_sections_the_code_relies_on() -> None:
    assert {
        "words",
        "directory-mirrors-the-idp",
        "platform-role",
        "mapping-rules",
        "roles-and-permission-matrix",
        "role-as-ceiling",
        "owner-cap",
        "last-owner",
        "leavers",
        "grants-and-product-states",
        "assignable-values",
        "client-identities",
        "onboarding",
        "audit",
        "immediacy-and-events",
    } <= rule_anchors()


def test_every_reference_to_the_rules_names_a_section() -> None:
    cited = references()
    assert "client-identities" in cited  # the scan finds what it looks for
    missing = {anchor: places for anchor, places in cited.items() if anchor not in rule_anchors()}
    assert missing == {}


def test_slugs_follow_the_headings() -> None:
    assert slug(" Owner cap and hold queue") == "owner-cap-and-hold-queue"
    assert slug("Directory mirrors the IdP") == "directory-mirrors-the-idp"
