"""What IT and products change beside the directory: product states, manual grants, onboarding.

Each function takes the session first, takes the organization's write lock
when it can change derived access, recomputes exactly the users concerned,
audits, and flushes; the caller commits once.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.access.catalog import HUB_CATALOG, ProductState
from connector.access.changes import AccessChange
from connector.access.mapping import group_ref_key
from connector.db import dialect as sql
from connector.db.base import utcnow
from connector.derived.facts import (
    SCIM_ROLE_PATHS,
    OrgRules,
    find_user,
    forget_rules,
    load_rules,
)
from connector.derived.locks import lock_rules_exclusive, lock_rules_shared, lock_users
from connector.derived.recompute import recompute
from connector.derived.tables import ManualGrant, OnboardingDone, OwnerSeat, ProductStateRow
from connector.directory.filters import matching_users
from connector.directory.tables import GroupMember, ScimAttributeValue
from connector.errors import InvalidInput
from connector.trail.cause import Cause
from connector.trail.journal import Journal


def set_product_state(
    session: Session, org_id: int, product: str, state: str, *, actor: str
) -> list[AccessChange]:
    """Set a product ``active``, ``trial`` or ``not_subscribed``.

    Grants of a not-subscribed product turn dormant and count again when it
    is enabled; Owners gain or lose it with the product
    (docs/rules.md#grants-and-product-states). Raises InvalidInput
    for an unknown product or state. Returns the access changes it caused.
    """
    if product not in HUB_CATALOG:
        raise InvalidInput(
            f"unknown product {product!r} (expected one of {', '.join(HUB_CATALOG.names)})"
        )
    new_state = ProductState.parse(state)
    lock_rules_exclusive(session, org_id)
    row = session.get(ProductStateRow, (org_id, product))
    old_state = ProductState.NOT_SUBSCRIBED if row is None else ProductState.parse(row.state)
    if old_state is new_state:
        return []
    if row is None:
        session.add(ProductStateRow(org_id=org_id, product=product, state=new_state.value))
    else:
        row.state = new_state.value
    session.flush()
    forget_rules(session, org_id)
    cause = Cause(actor, f"product {product} set to {new_state.value}")
    journal = Journal()
    journal.audit(
        cause,
        "product.state_changed",
        f"product:{product}",
        {"state": old_state.value},
        {"state": new_state.value},
    )
    journal.announce(
        "product.state_changed",
        product,
        {"product": product, "before": old_state.value, "after": new_state.value},
    )
    rules = load_rules(session, org_id)
    result = recompute(
        session,
        org_id,
        users_granted(session, org_id, rules, product),
        cause=cause,
        rules=rules,
        journal=journal,
    )
    journal.write(session, org_id)
    session.flush()
    return [item.change for item in result.changes]


def users_granted(session: Session, org_id: int, rules: OrgRules, product: str) -> list[str]:
    """Every user a grant of ``product`` can reach, and the seated Owners (who get every product).

    Members of the groups bound to a rule granting it, holders of an Entra
    app role a rule maps to it, users whose attributes satisfy a rule's
    condition granting it, and users with a manual grant of it.
    """
    dialect = session.get_bind().dialect.name
    config = rules.config
    granting = [
        rule for rule in config.rules if rule.grant is not None and rule.grant.product == product
    ]
    users: set[str] = set()
    groups = {
        rules.context.bindings[rule.group_key]
        for rule in granting
        if rule.group_key is not None and rule.group_key in rules.context.bindings
    }
    if groups:
        users.update(
            session.scalars(
                select(GroupMember.user_id).where(sql.in_ids(dialect, GroupMember.group_id, groups))
            )
        )
    for rule in granting:
        if rule.condition is not None:
            model = rule.condition.model
            found = matching_users(model, org_id, dialect, rule.condition.compiled.ast)
            users.update(session.scalars(found))
    role_keys = {group_ref_key(rule.scim_role) for rule in granting if rule.scim_role is not None}
    if role_keys and config.map_scim_roles:
        users.update(
            session.scalars(
                select(ScimAttributeValue.resource_id).where(
                    ScimAttributeValue.org_id == org_id,
                    ScimAttributeValue.path.in_(SCIM_ROLE_PATHS),
                    ScimAttributeValue.value_key.in_(sorted(role_keys)),
                )
            )
        )
    users.update(
        session.scalars(
            select(ManualGrant.user_id).where(
                ManualGrant.org_id == org_id, ManualGrant.product == product
            )
        )
    )
    users.update(session.scalars(select(OwnerSeat.user_id).where(OwnerSeat.org_id == org_id)))
    return sorted(users)


def grant_manual(
    session: Session,
    org_id: int,
    user_ref: str,
    product: str,
    roles: list[str],
    permissions: list[str],
    *,
    actor: str,
) -> None:
    """Grant one user a product by hand, beside what the mapping gives.

    Replaces an earlier manual grant of the same product. Raises InvalidInput
    naming every problem (unknown product, role or permission, a client
    access role: docs/rules.md#client-identities) and UserNotFound.
    """
    problems = HUB_CATALOG.grant_problems(product, roles, permissions)
    if problems:
        raise InvalidInput("; ".join(problem.message for problem in problems))
    user_id, user_name = find_user(session, org_id, user_ref)
    lock_rules_shared(session, org_id)
    lock_users(session, org_id, [user_id])
    row = session.get(ManualGrant, (org_id, user_id, product))
    before = None if row is None else _grant_json(row)
    if row is None:
        row = ManualGrant(org_id=org_id, user_id=user_id, product=product)
        session.add(row)
    row.product_roles = sorted(set(roles))
    row.permissions = sorted(set(permissions))
    row.granted_by = actor
    row.granted_at = utcnow()
    session.flush()
    cause = Cause(actor, f"manual grant of {product} to {user_name}")
    journal = Journal()
    journal.audit(cause, "grant.manual_granted", f"user:{user_id}", before, _grant_json(row))
    recompute(session, org_id, [user_id], cause=cause, journal=journal)
    journal.write(session, org_id)
    session.flush()


def revoke_manual(
    session: Session, org_id: int, user_ref: str, product: str, *, actor: str
) -> bool:
    """Remove a user's manual grant of ``product``; False when there was none.

    What the mapping grants stays. Onboarding already done stays done
    (docs/rules.md#onboarding).
    """
    user_id, user_name = find_user(session, org_id, user_ref)
    lock_rules_shared(session, org_id)
    lock_users(session, org_id, [user_id])
    row = session.get(ManualGrant, (org_id, user_id, product))
    if row is None:
        return False
    before = _grant_json(row)
    session.delete(row)
    session.flush()
    cause = Cause(actor, f"manual grant of {product} revoked from {user_name}")
    journal = Journal()
    journal.audit(cause, "grant.manual_revoked", f"user:{user_id}", before, None)
    recompute(session, org_id, [user_id], cause=cause, journal=journal)
    journal.write(session, org_id)
    session.flush()
    return True


def _grant_json(row: ManualGrant) -> dict[str, object]:
    return {
        "product": row.product,
        "product_roles": list(row.product_roles),
        "permissions": list(row.permissions),
        "granted_by": row.granted_by,
    }


def complete_onboarding(
    session: Session, org_id: int, user_ref: str, product: str, *, actor: str
) -> bool:
    """Mark a product's onboarding done for a user: once per user per product, ever.

    docs/rules.md#onboarding. True the first time, False after (idempotent;
    concurrent calls are safe).
    Raises InvalidInput for a product without an onboarding flow, UserNotFound.
    """
    found = HUB_CATALOG.product(product)
    if found is None or found.onboarding is None:
        with_flow = ", ".join(p.name for p in HUB_CATALOG if p.onboarding is not None)
        raise InvalidInput(
            f"product {product!r} has no onboarding flow (those that do: {with_flow})"
        )
    user_id, user_name = find_user(session, org_id, user_ref)
    dialect = session.get_bind().dialect.name
    statement = postgresql_insert if dialect == "postgresql" else sqlite_insert
    inserted = session.execute(
        statement(OnboardingDone)
        .values(user_id=user_id, product=product, org_id=org_id, completed_at=utcnow())
        .on_conflict_do_nothing(index_elements=["user_id", "product"])
        .returning(OnboardingDone.user_id)
    ).first()
    if inserted is None:
        return False
    cause = Cause(actor, f"{found.title} onboarding ({found.onboarding}) completed by {user_name}")
    journal = Journal()
    journal.audit(
        cause,
        "onboarding.completed",
        f"user:{user_id}",
        {"product": product, "onboarding": "pending"},
        {"product": product, "onboarding": "done"},
    )
    journal.write(session, org_id)
    session.flush()
    return True
