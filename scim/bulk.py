"""Bulk requests (RFC 7644 section 3.7).

Each operation runs the same code as its single-request counterpart, inside
its own backend savepoint: a failed operation leaves nothing behind and the
others carry on, until ``failOnErrors`` errors are reached. ``bulkId:<id>``
references, in a path or anywhere in a value (a group's members, a manager),
are replaced by the id the referenced POST created; an operation waits for
the operations it references, whatever their place in the request, and one
whose reference cannot be resolved (unknown, failed, or circular) fails with
409.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidPathException,
    InvalidSyntaxException,
    InvalidValueException,
    PayloadTooLargeException,
    SCIMException,
)
from werkzeug.http import parse_etags

from scim.backend import Backend, ResourceKind, Stored
from scim.errors import exception_from_validation_error
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.http import weak_etag
from scim.limits import DeadlineExceededException
from scim.operations import create_resource, delete_resource, patch_resource, replace_resource
from scim.representation import resource_location
from scim.resources import ENDPOINTS
from scim.settings import ScimSettings

BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
BULK_ID_PREFIX = "bulkId:"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
SUCCESS_STATUS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}

logger = logging.getLogger(__name__)


class UnresolvedReferenceException(SCIMException):
    """A ``bulkId`` no successful POST of the request defines (RFC 7644 section 3.7.2)."""

    status = 409
    _default_detail = "A bulkId reference could not be resolved"


@dataclass
class BulkOperation:
    """One operation as read from the request, before any reference is resolved."""

    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    references: set[str] = field(default_factory=set)


def process_bulk(
    backend: Backend,
    payload: Any,
    settings: ScimSettings,
    base_url: str,
    served: ServedSchemas = DEFAULT_SCHEMAS,
) -> dict[str, Any]:
    """Run a BulkRequest and return the BulkResponse document."""
    operations, fail_on_errors = parse_bulk_request(payload, settings)
    defined = {op.bulk_id for op in operations if op.bulk_id}
    created: dict[str, str] = {}
    failed_ids: set[str] = set()
    results: dict[int, dict[str, Any]] = {}
    errors = 0
    pending = list(operations)

    while pending and (fail_on_errors is None or errors < fail_on_errors):
        ready = next(
            (
                op
                for op in pending
                if all(
                    ref in created or ref in failed_ids or ref not in defined
                    for ref in op.references
                )
            ),
            None,
        )
        # Only circular references remain: each of them fails.
        operation = ready or pending[0]
        pending.remove(operation)
        result = _run(
            backend, operation, created, settings, base_url, served, circular=ready is None
        )
        results[operation.index] = result
        if int(result["status"]) >= 400:
            errors += 1
            if operation.bulk_id:
                failed_ids.add(operation.bulk_id)

    return {
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": [results[index] for index in sorted(results)],
    }


def parse_bulk_request(
    payload: Any, settings: ScimSettings
) -> tuple[list[BulkOperation], int | None]:
    """Read the BulkRequest envelope; too many operations answer 413 (RFC 7644 section 3.7.4)."""
    if not isinstance(payload, dict):
        raise InvalidSyntaxException(detail="The BulkRequest must be a JSON object")
    fields = {key.lower(): value for key, value in payload.items()}
    schemas = fields.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list)
        or BULK_REQUEST_SCHEMA.lower() not in {str(urn).lower() for urn in schemas}
    ):
        raise InvalidSyntaxException(detail=f"schemas must contain '{BULK_REQUEST_SCHEMA}'")
    raw_operations = fields.get("operations")
    if not isinstance(raw_operations, list) or not raw_operations:
        raise InvalidValueException(detail="Operations must list one or more operations")
    if len(raw_operations) > settings.bulk_max_operations:
        raise PayloadTooLargeException(
            detail=f"A Bulk request carries at most {settings.bulk_max_operations} operations"
        )
    fail_on_errors = fields.get("failonerrors")
    if fail_on_errors is not None and (
        not isinstance(fail_on_errors, int)
        or isinstance(fail_on_errors, bool)
        or fail_on_errors < 1
    ):
        raise InvalidValueException(detail="failOnErrors must be a positive integer")

    operations = [_parse_operation(index, raw) for index, raw in enumerate(raw_operations)]
    bulk_ids = [op.bulk_id for op in operations if op.bulk_id]
    if len(bulk_ids) != len(set(bulk_ids)):
        raise InvalidValueException(detail="Each bulkId must be unique within the request")
    return operations, fail_on_errors


def _parse_operation(index: int, raw: Any) -> BulkOperation:
    if not isinstance(raw, dict):
        raise InvalidSyntaxException(detail="Each operation must be a JSON object")
    fields = {key.lower(): value for key, value in raw.items()}
    method = fields.get("method")
    bulk_id = fields.get("bulkid")
    version = fields.get("version")
    path = fields.get("path")
    operation = BulkOperation(
        index=index,
        method=method.upper() if isinstance(method, str) else "",
        path=path if isinstance(path, str) else "",
        bulk_id=bulk_id if isinstance(bulk_id, str) and bulk_id else None,
        version=version if isinstance(version, str) else None,
        data=fields.get("data"),
    )
    operation.references = set(_references(operation.data)) | set(_references(operation.path))
    return operation


def _run(
    backend: Backend,
    operation: BulkOperation,
    created: dict[str, str],
    settings: ScimSettings,
    base_url: str,
    served: ServedSchemas,
    *,
    circular: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {"method": operation.method or None}
    if operation.bulk_id:
        result["bulkId"] = operation.bulk_id
    try:
        if circular:
            raise UnresolvedReferenceException(
                detail="The operation takes part in a circular bulkId reference"
            )
        with backend.savepoint():
            kind, resource_id, stored = _execute(backend, operation, created, settings, served)
    except ValidationError as exc:
        return _failure(result, exception_from_validation_error(exc))
    except DeadlineExceededException:
        # The whole request is past its time: it answers 503 and keeps nothing
        # (SQLite, interrupting a write, has already rolled all of it back).
        raise
    except SCIMException as exc:
        return _failure(result, exc)
    except Exception:
        logger.exception("Unexpected error in Bulk operation %s", operation.index)
        return _failure(
            result,
            SCIMException.from_error(
                Error(status=500, detail="The service provider could not complete the operation")
            ),
        )
    result["location"] = resource_location(base_url, kind, resource_id)
    if stored is not None:
        result["version"] = weak_etag(stored.version)
        if operation.bulk_id and operation.method == "POST":
            created[operation.bulk_id] = stored.id
    result["status"] = str(SUCCESS_STATUS[operation.method])
    return result


def _execute(
    backend: Backend,
    operation: BulkOperation,
    created: dict[str, str],
    settings: ScimSettings,
    served: ServedSchemas,
) -> tuple[ResourceKind, str, Stored | None]:
    """Run one operation, with its ``bulkId`` references resolved."""
    if operation.method not in METHODS:
        raise InvalidValueException(detail="method must be one of POST, PUT, PATCH or DELETE")
    kind, resource_id = _target(_resolve(operation.path, created))
    data = _resolve(operation.data, created)
    if_match = parse_etags(operation.version) if operation.version else None
    if operation.method == "POST":
        if resource_id is not None:
            raise InvalidPathException(path=operation.path, detail="POST targets an endpoint")
        if operation.bulk_id is None:
            raise InvalidValueException(detail="bulkId is required for POST operations")
        stored = create_resource(backend, kind, data, settings.max_multi_valued, served)
        return kind, stored.id, stored
    if resource_id is None:
        raise InvalidPathException(
            path=operation.path, detail=f"{operation.method} targets a resource"
        )
    if operation.method == "PUT":
        stored = replace_resource(
            backend, kind, resource_id, data, if_match, settings.max_multi_valued, served
        )
        return kind, resource_id, stored
    if operation.method == "PATCH":
        result = patch_resource(backend, kind, resource_id, data, settings, if_match, served=served)
        return kind, resource_id, result.stored
    delete_resource(backend, kind, resource_id, if_match)
    return kind, resource_id, None


def _target(path: str) -> tuple[ResourceKind, str | None]:
    """The resource type and id of ``/Users``, ``/Groups/<id>``..."""
    endpoint, _, resource_id = path.strip("/").partition("/")
    for kind, kind_endpoint in ENDPOINTS.items():
        if endpoint.lower() == kind_endpoint.strip("/").lower():
            if "/" in resource_id:
                break
            return kind, resource_id or None
    raise InvalidPathException(path=path, detail="path must be /Users or /Groups, with an id")


def _references(value: Any) -> list[str]:
    """Every ``bulkId:<id>`` a value refers to, anywhere in it."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found += [
                part[len(BULK_ID_PREFIX) :]
                for part in item.split("/")
                if part.startswith(BULK_ID_PREFIX)
            ]
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _resolve(value: Any, created: dict[str, str]) -> Any:
    """A copy of ``value`` with each ``bulkId:<id>`` replaced by the id it created."""
    if isinstance(value, str):
        if BULK_ID_PREFIX not in value:
            return value
        parts = value.split("/")
        for position, part in enumerate(parts):
            if part.startswith(BULK_ID_PREFIX):
                reference = part[len(BULK_ID_PREFIX) :]
                if reference not in created:
                    raise UnresolvedReferenceException(
                        detail=f"bulkId '{reference}' names no resource this request created"
                    )
                parts[position] = created[reference]
        return "/".join(parts)
    if isinstance(value, dict):
        return {key: _resolve(item, created) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, created) for item in value]
    return value


def _failure(result: dict[str, Any], exc: SCIMException) -> dict[str, Any]:
    error = exc.to_error()
    status = error.status or exc.status
    document = error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    document["status"] = str(status)
    result["status"] = str(status)
    result["response"] = document
    return result
