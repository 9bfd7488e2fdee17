"""The console's pages: Overview, People, Owners, Mapping, Products, Connection, Audit.

Every read works without JavaScript; every action is a POST form (with its
CSRF token) calling the same service of :mod:`connector.admin` as the
``hub-scim`` command, with the actor ``console:<userName>``; each route names
the matrix action it needs (:func:`connector.console.guard.requires`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from connector.access.catalog import HUB_CATALOG, ProductState
from connector.access.mapping import MappingError
from connector.access.roles import ItAction, may
from connector.admin.auditing import audit_action
from connector.admin.credentials import (
    connection_status,
    create_oauth_client,
    issue_credential,
    recent_failures,
    revoke,
    rotate_credential,
)
from connector.admin.grants import grant_manual, revoke_manual, set_product_state
from connector.admin.health import health_report
from connector.admin.mappings import (
    PreviewOutdated,
    apply_mapping,
    apply_previewed_mapping,
    current_mapping,
    describe_change,
    preview_fingerprint,
)
from connector.admin.sso import SsoNotConfigured, get_sso
from connector.admin.webhooks import WebhookSummary, list_webhooks
from connector.console.guard import console_db, principal, refusal_reason, refuse, requires
from connector.console.queries import (
    AuditFilter,
    audit_page,
    iter_audit,
    people_page,
    user_audit,
)
from connector.derived.facts import UserNotFound, load_rules, load_seats, load_user_names
from connector.derived.queries import user_access
from connector.derived.tables import MappingDocument, ProductStateRow
from connector.settings import Settings
from connector.tenancy.credentials import CredentialNotFoundError, Scope
from connector.trail.audit import AuditRecord
from connector.trail.request_log import RequestLogFilter, query_requests

AUDIT_PAGE_SIZE = 100
LOG_PAGE_SIZE = 100
# Okta and Entra push changes within minutes and Entra re-syncs every 40
# minutes; a week without a single SCIM write means the connection is broken
# or the app was unassigned.
IDP_SILENCE = timedelta(days=7)


def register(blueprint: Blueprint, settings: Settings) -> None:
    @blueprint.get("/")
    def overview() -> Response | str:
        who = principal()
        if not may(who.role, ItAction.VIEW_HEALTH):
            return redirect(url_for("console.me"))
        db = console_db()
        report = health_report(db, who.org_id)
        statuses = connection_status(db, who.org_id)
        try:
            sso = get_sso(db, who.org_id)
        except SsoNotConfigured:
            sso = None
        writes = [
            status.last_used_at
            for status in statuses
            if status.credential.scope in (Scope.SCIM.value, Scope.CLIENT.value)
            and status.last_used_at is not None
        ]
        last_write = max(writes) if writes else None
        silent = last_write is None or _now() - last_write > IDP_SILENCE
        failed, recent = recent_failures(db, who.org_id)
        return render_template(
            "overview.html",
            report=report,
            statuses=statuses,
            sso=sso,
            last_write=last_write,
            silent=silent,
            silence_days=IDP_SILENCE.days,
            failed=failed,
            recent=recent,
        )

    @blueprint.get("/me")
    def me() -> Response | str:
        who = principal()
        if who.user_id is None:
            return render_template("me.html", access=None)
        access = user_access(console_db(), who.org_id, who.user_id)
        return render_template("me.html", access=access)

    @blueprint.get("/people")
    @requires(ItAction.MANAGE_USERS)
    def people() -> str:
        query = request.args.get("q", "")[:200]
        status = request.args.get("status", "")
        page = _int(request.args.get("page"), 1)
        found = people_page(console_db(), principal().org_id, query=query, status=status, page=page)
        return render_template("people.html", found=found, q=query, status=status)

    @blueprint.get("/people/<user_id>")
    def person(user_id: str) -> Response | str:
        who = principal()
        if user_id != who.user_id and not may(who.role, ItAction.MANAGE_USERS):
            return refuse(ItAction.MANAGE_USERS, refusal_reason(who.role, ItAction.MANAGE_USERS))
        return _person_page(user_id)

    def _person_page(user_id: str, **extra: Any) -> str:
        who = principal()
        db = console_db()
        try:
            access = user_access(db, who.org_id, user_id)
        except UserNotFound:
            abort(404)
        if access["id"] != user_id:
            abort(404)  # a userName is not an id here: one URL per user
        entries = user_audit(db, who.org_id, user_id)
        return render_template(
            "person.html", access=access, entries=entries, catalog=HUB_CATALOG, **extra
        )

    @blueprint.post("/people/<user_id>/grant")
    @requires(ItAction.GRANT_PRODUCT_ACCESS)
    def grant(user_id: str) -> Response | str:
        who = principal()
        db = console_db()
        product = request.form.get("product", "")
        roles = _words(request.form.get("roles", ""))
        permissions = _words(request.form.get("permissions", ""))
        try:
            _own_user(user_id)
            grant_manual(db, who.org_id, user_id, product, roles, permissions, actor=who.actor)
        except ValueError as error:
            db.rollback()
            return _person_page(user_id, problem=str(error))
        db.commit()
        return redirect(url_for("console.person", user_id=user_id))

    @blueprint.post("/people/<user_id>/revoke")
    @requires(ItAction.GRANT_PRODUCT_ACCESS)
    def revoke_grant(user_id: str) -> Response | str:
        who = principal()
        db = console_db()
        _own_user(user_id)
        product = request.form.get("product", "")
        if not revoke_manual(db, who.org_id, user_id, product, actor=who.actor):
            db.rollback()
            return _person_page(user_id, problem=f"no manual grant of {product} to revoke")
        db.commit()
        return redirect(url_for("console.person", user_id=user_id))

    @blueprint.get("/owners")
    @requires(ItAction.MANAGE_USERS)
    def owners() -> str:
        db = console_db()
        org_id = principal().org_id
        seats = load_seats(db, org_id).seats
        names = load_user_names(db, org_id, seats.owner_ids + seats.held_ids)
        rules = load_rules(db, org_id)
        return render_template("owners.html", seats=seats, names=names, rules=rules)

    @blueprint.get("/mapping")
    @requires(ItAction.VIEW_MAPPING)
    def mapping() -> str:
        db = console_db()
        org_id = principal().org_id
        source = current_mapping(db, org_id)
        document = db.get(MappingDocument, org_id)
        rules = load_rules(db, org_id)
        return render_template("mapping.html", source=source or "", document=document, rules=rules)

    @blueprint.post("/mapping/preview")
    @requires(ItAction.MANAGE_ROLES)
    def mapping_preview() -> str | tuple[str, int]:
        source = request.form.get("source", "")
        return _preview_page(source)

    def _preview_page(source: str, outdated: bool = False) -> str | tuple[str, int]:
        who = principal()
        db = console_db()
        try:
            preview = apply_mapping(
                db, who.org_id, source, actor=who.actor, dry_run=True, source_name="console"
            )
        except MappingError as error:
            db.rollback()
            bad = {problem.line for problem in error.problems}
            return (
                render_template(
                    "mapping_refused.html",
                    error=error,
                    source=source,
                    lines=list(enumerate(source.splitlines(), start=1)),
                    bad=bad,
                ),
                422,
            )
        finally:
            db.rollback()  # a preview never writes
        return render_template(
            "mapping_preview.html",
            preview=preview,
            text=preview.to_text(),
            source=source,
            fingerprint=preview_fingerprint(preview, source),
            describe=describe_change,
            outdated=outdated,
        )

    @blueprint.post("/mapping/apply")
    @requires(ItAction.MANAGE_ROLES)
    def mapping_apply() -> Response | str | tuple[str, int]:
        who = principal()
        db = console_db()
        source = request.form.get("source", "")
        fingerprint = request.form.get("fingerprint", "")
        try:
            applied = apply_previewed_mapping(db, who.org_id, source, fingerprint, actor=who.actor)
        except MappingError:
            db.rollback()
            return _preview_page(source)
        except PreviewOutdated:
            db.rollback()
            return _preview_page(source, outdated=True)
        db.commit()
        return render_template(
            "mapping_applied.html",
            preview=applied,
            text=applied.to_text(),
            describe=describe_change,
        )

    @blueprint.get("/products")
    @requires(ItAction.VIEW_PRODUCTS)
    def products() -> str:
        return _products_page()

    def _products_page(**extra: Any) -> str:
        db = console_db()
        org_id = principal().org_id
        stored = dict(
            db.execute(
                select(ProductStateRow.product, ProductStateRow.state).where(
                    ProductStateRow.org_id == org_id
                )
            ).all()
        )
        states = {
            item.name: stored.get(item.name, ProductState.NOT_SUBSCRIBED.value)
            for item in HUB_CATALOG
        }
        return render_template(
            "products.html",
            catalog=HUB_CATALOG,
            states=states,
            choices=[state.value for state in ProductState],
            **extra,
        )

    @blueprint.post("/products/<product>")
    @requires(ItAction.ENABLE_PRODUCTS)
    def product_set(product: str) -> Response | str:
        who = principal()
        db = console_db()
        try:
            changes = set_product_state(
                db, who.org_id, product, request.form.get("state", ""), actor=who.actor
            )
        except ValueError as error:
            db.rollback()
            return _products_page(problem=str(error))
        names = load_user_names(db, who.org_id, [change.user_id for change in changes])
        db.commit()
        return _products_page(
            changed=product, changes=changes, names=names, describe=describe_change
        )

    @blueprint.get("/connection")
    @requires(ItAction.VIEW_CONNECTION)
    def connection() -> str:
        return _connection_page()

    def _connection_page(**extra: Any) -> str:
        db = console_db()
        org_id = principal().org_id
        base = (settings.public_base_url or request.host_url.rstrip("/")) + "/scim/v2"
        try:
            sso = get_sso(db, org_id)
        except SsoNotConfigured:
            sso = None
        return render_template(
            "connection.html",
            statuses=connection_status(db, org_id),
            base_url=base,
            sso=sso,
            webhooks=_webhooks(org_id),
            now=_now(),
            **extra,
        )

    def _webhooks(org_id: int) -> list[WebhookSummary]:
        # Read-only here (managed with `hub-scim webhook`); never the signing secret.
        return list_webhooks(console_db(), org_id)

    @blueprint.post("/connection/credentials")
    @requires(ItAction.MANAGE_CONNECTION)
    def credential_create() -> Response | str:
        who = principal()
        db = console_db()
        scope = request.form.get("scope", Scope.SCIM.value)
        if scope not in (Scope.SCIM.value, Scope.ACCESS.value):
            return _connection_page(problem=f"unknown scope {scope!r}")
        issued = issue_credential(
            db, who.org_id, scope, actor=who.actor, label=request.form.get("label", "")[:200]
        )
        db.commit()
        return _connection_page(issued=issued)

    @blueprint.post("/connection/credentials/<credential_id>/rotate")
    @requires(ItAction.MANAGE_CONNECTION)
    def credential_rotate(credential_id: str) -> Response | str:
        who = principal()
        db = console_db()
        try:
            issued = rotate_credential(db, who.org_id, credential_id, actor=who.actor)
        except CredentialNotFoundError:
            abort(404)
        except ValueError as error:
            db.rollback()
            return _connection_page(problem=str(error))
        db.commit()
        return _connection_page(issued=issued)

    @blueprint.post("/connection/credentials/<credential_id>/revoke")
    @requires(ItAction.MANAGE_CONNECTION)
    def credential_revoke(credential_id: str) -> Response | str:
        who = principal()
        db = console_db()
        try:
            revoke(db, who.org_id, credential_id, actor=who.actor)
        except CredentialNotFoundError:
            abort(404)
        db.commit()
        return redirect(url_for("console.connection"))

    @blueprint.post("/connection/clients")
    @requires(ItAction.MANAGE_CONNECTION)
    def client_create() -> Response | str:
        who = principal()
        db = console_db()
        issued = create_oauth_client(
            db, who.org_id, actor=who.actor, label=request.form.get("label", "")[:200]
        )
        db.commit()
        return _connection_page(issued=issued)

    @blueprint.get("/log")
    @requires(ItAction.VIEW_HEALTH)
    def provisioning_log() -> str:
        problem = None
        status: int | None = None
        try:
            since = _date(request.args.get("since"))
            until = _date(request.args.get("until"))
        except ValueError:
            since = until = None
            problem = "dates are written 2026-12-04 or 2026-12-04T09:30"
        if request.args.get("status"):
            status = _int(request.args.get("status"), 0) or None
        where = RequestLogFilter(
            failed=request.args.get("failed") == "1",
            status=status,
            user=request.args.get("user", "").strip()[:512] or None,
            since=since,
            until=until,
        )
        before = _int(request.args.get("before"), 0) or None
        found = query_requests(
            console_db(), principal().org_id, where, before=before, limit=LOG_PAGE_SIZE
        )
        return render_template(
            "log.html",
            found=found,
            where=where,
            problem=problem,
            args={k: v for k, v in request.args.items() if k != "before"},
        )

    @blueprint.get("/audit")
    @requires(ItAction.VIEW_AUDIT)
    def audit_trail() -> str:
        audit_filter, problem = _audit_filter()
        before = _int(request.args.get("before"), 0) or None
        entries = audit_page(
            console_db(), principal().org_id, audit_filter, before_id=before, size=AUDIT_PAGE_SIZE
        )
        more = len(entries) == AUDIT_PAGE_SIZE
        return render_template(
            "audit.html",
            entries=entries,
            filter=audit_filter,
            problem=problem,
            next_before=entries[-1].id if more else None,
            args={k: v for k, v in request.args.items() if k != "before"},
        )

    @blueprint.get("/audit/export.csv")
    @requires(ItAction.EXPORT_AUDIT)
    def audit_export_csv() -> Response:
        return _export("csv")

    @blueprint.get("/audit/export.jsonl")
    @requires(ItAction.EXPORT_AUDIT)
    def audit_export_jsonl() -> Response:
        return _export("jsonl")

    def _export(kind: str) -> Response:
        who = principal()
        db = console_db()
        audit_filter, _problem = _audit_filter()
        audit_action(
            db,
            who.org_id,
            actor=who.actor,
            action="audit.exported",
            target="audit",
            after={
                "format": kind,
                "actor": audit_filter.actor,
                "action": audit_filter.action,
                "target": audit_filter.target,
            },
            reason="audit trail exported from the console",
        )
        db.commit()
        entries = list(iter_audit(db, who.org_id, audit_filter))
        stamp = _now().strftime("%Y%m%dT%H%M%SZ")
        if kind == "csv":
            body = "".join(_csv_lines(entries))
            mimetype = "text/csv"
        else:
            body = "".join(
                json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
                for entry in entries
            )
            mimetype = "application/x-ndjson"
        response = Response(body, mimetype=mimetype)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="audit-{g.console_org_name}-{stamp}.{kind}"'
        )
        return response


def _csv_lines(entries: list[AuditRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "at", "actor", "action", "target", "before", "after", "reason"])
    for entry in entries:
        data = entry.to_json()
        writer.writerow(
            [
                data["id"],
                data["at"],
                _cell(entry.actor),
                _cell(entry.action),
                _cell(entry.target),
                json.dumps(entry.before, ensure_ascii=False),
                json.dumps(entry.after, ensure_ascii=False),
                _cell(entry.reason),
            ]
        )
    yield buffer.getvalue()


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _audit_filter() -> tuple[AuditFilter, str | None]:
    problem = None
    since = until = None
    try:
        since = _date(request.args.get("since"))
        until = _date(request.args.get("until"))
    except ValueError:
        problem = "dates are written 2026-12-04 or 2026-12-04T09:30"
    return (
        AuditFilter(
            actor=request.args.get("actor", "")[:200],
            action=request.args.get("action", "")[:100],
            target=request.args.get("target", "")[:300],
            since=since,
            until=until,
        ),
        problem,
    )


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _own_user(user_id: str) -> None:
    """404 unless ``user_id`` is a user of the signed-in organization (tenant isolation)."""
    try:
        found = user_access(console_db(), principal().org_id, user_id)
    except UserNotFound:
        abort(404)
    if found["id"] != user_id:
        abort(404)


def _words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _now() -> datetime:
    return datetime.now(UTC)
