"""The SCIM 2.0 HTTP endpoints as one Flask blueprint (RFC 7644 section 3).

Mount it at the SCIM base URL, with the error handlers for what a blueprint
cannot catch::

    app.register_blueprint(create_blueprint(provider, settings), url_prefix="/scim/v2")
    register_scim_error_handlers(app, "/scim/v2")

Views are thin: read and validate the request (``prepare_*`` of
:mod:`scim.operations`) before asking for the tenant's backend, so that no
transaction or lock is open while a body is read or validated; then call one
``apply_*`` function (or :mod:`scim.bulk`) on the backend, commit once if it
changed anything, serialize. Authentication is the application's:
it registers a ``before_request`` on this blueprint that raises
:class:`scim2_models.UnauthorizedException`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request, url_for
from pydantic import ValidationError
from scim2_models import (
    Context,
    InvalidValueException,
    NotFoundException,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    SearchRequest,
)
from werkzeug.datastructures import ETags
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_current_url

from scim.backend import Backend, BackendProvider, ResourceKind, Stored
from scim.bulk import process_bulk
from scim.discovery import (
    discovery_list,
    find_resource_type,
    find_schema,
    resource_type_document,
    resource_types,
    schema_document,
    schemas,
    service_provider_config,
)
from scim.errors import (
    error_response,
    exception_from_validation_error,
    http_error_response,
    internal_error_response,
    scim_json_response,
)
from scim.extensions import DEFAULT_SCHEMAS, ServedSchemas
from scim.http import etag_matches, read_json_body, weak_etag
from scim.operations import (
    apply_creation,
    apply_patch,
    apply_replacement,
    delete_resource,
    list_resources,
    prepare_creation,
    prepare_patch,
    prepare_replacement,
    search_all,
)
from scim.published import (
    Publication,
    get_published,
    list_published,
)
from scim.query import parse_list_request, parse_search, query_parameters, wants_attribute
from scim.representation import (
    list_response,
    resource_location,
    resource_response,
    stored_from_document,
)
from scim.resources import ENDPOINTS, MEMBERSHIP_ATTRIBUTE
from scim.settings import ScimSettings

T = TypeVar("T")

_ENDPOINT_KINDS = {endpoint.strip("/"): kind for kind, endpoint in ENDPOINTS.items()}


def create_blueprint(
    provider: BackendProvider,
    settings: ScimSettings,
    name: str = "scim",
    publications: Sequence[Publication] = (),
    schemas: Callable[[], ServedSchemas] | None = None,
) -> Blueprint:
    """The SCIM endpoints over the backend ``provider`` gives for each request.

    ``publications`` adds read-only resource types, such as the roles and
    entitlements a client may assign (:mod:`scim.published`): each is listed
    in ``/ResourceTypes`` and ``/Schemas`` and served at its endpoint, GET only.
    ``schemas`` gives the schemas served to this request's tenant (its declared
    extensions, :mod:`scim.extensions`); without it every request is served
    the core ones.
    """
    blueprint = Blueprint(name, __name__)
    views = _Views(provider, settings, publications, schemas or _default_schemas)

    blueprint.before_request(views.check_query_string)

    for endpoint, kind in _ENDPOINT_KINDS.items():
        blueprint.add_url_rule(
            f"/{endpoint}",
            f"list_{endpoint.lower()}",
            views.resources_view(kind),
            methods=["GET", "POST"],
        )
        blueprint.add_url_rule(
            f"/{endpoint}/.search",
            f"search_{endpoint.lower()}",
            views.search_view(kind),
            methods=["POST"],
        )
        blueprint.add_url_rule(
            f"/{endpoint}/<resource_id>",
            f"{endpoint.lower()[:-1]}",
            views.resource_view(kind),
            methods=["GET", "PUT", "PATCH", "DELETE"],
        )
    for publication in publications:
        endpoint = publication.type.endpoint
        blueprint.add_url_rule(
            endpoint, f"list_{publication.type.id.lower()}", views.published_list(publication)
        )
        blueprint.add_url_rule(
            f"{endpoint}/<path:resource_id>",
            f"published_{publication.type.id.lower()}",
            views.published_resource(publication),
        )
    blueprint.add_url_rule("/.search", "search", views.search_root, methods=["POST"])
    blueprint.add_url_rule("/Bulk", "bulk", views.bulk, methods=["POST"])
    blueprint.add_url_rule(
        "/ServiceProviderConfig", "service_provider_config", views.service_provider_config
    )
    blueprint.add_url_rule("/ResourceTypes", "resource_types", views.resource_types_view)
    blueprint.add_url_rule(
        "/ResourceTypes/<resource_type_id>", "resource_type", views.resource_type
    )
    blueprint.add_url_rule("/Schemas", "schemas", views.schemas_view)
    blueprint.add_url_rule("/Schemas/<schema_id>", "schema", views.schema)

    blueprint.register_error_handler(SCIMException, views.handle_scim_exception)
    blueprint.register_error_handler(ValidationError, views.handle_validation_error)
    blueprint.register_error_handler(HTTPException, http_error_response)
    blueprint.register_error_handler(Exception, internal_error_response)
    return blueprint


def _base_url(app: Flask, scheme: str, host: str, root_path: str, blueprint: str | None) -> str:
    """The SCIM base URL of a request to ``app`` with these parts, in its request context."""
    path = url_for(f"{blueprint}.service_provider_config")
    return get_current_url(scheme, host).rstrip("/") + path.removesuffix("/ServiceProviderConfig")


def _default_schemas() -> ServedSchemas:
    return DEFAULT_SCHEMAS


class _Views:
    """The view functions, sharing the backend provider and the settings."""

    def __init__(
        self,
        provider: BackendProvider,
        settings: ScimSettings,
        publications: Sequence[Publication] = (),
        schemas: Callable[[], ServedSchemas] = lambda: DEFAULT_SCHEMAS,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.served = schemas
        self.publications = tuple(publications)
        self.published_types = tuple(
            publication.type.resource_type() for publication in self.publications
        )
        published_schemas = {
            str(model.__schema__): model.to_schema()
            for publication in self.publications
            for model in publication.type.schemas
        }
        self.published_schemas = tuple(published_schemas.values())
        # What the base URL depends on repeats from request to request, while
        # building it (a URL build, an IRI conversion) is a noticeable part of
        # a short request's CPU. Bounded: the Host header is the client's.
        self._base_urls = functools.lru_cache(maxsize=64)(_base_url)

    # -- errors ----------------------------------------------------------------

    def handle_scim_exception(self, exc: SCIMException) -> Response:
        return error_response(exc, self.settings.www_authenticate)

    def handle_validation_error(self, exc: ValidationError) -> Response:
        return error_response(exception_from_validation_error(exc))

    def check_query_string(self) -> None:
        """Refuse an over-long query string before reading it (a limit of the settings)."""
        if len(request.query_string) > self.settings.max_query_string_bytes:
            raise InvalidValueException(
                detail=f"The query string exceeds {self.settings.max_query_string_bytes} bytes"
            )

    # -- resources ---------------------------------------------------------------

    def resources_view(self, kind: ResourceKind) -> Callable[[], Response]:
        def view() -> Response:
            if request.method == "POST":
                return self.create(kind)
            return self.query(kind, query_parameters(request.args))

        view.__name__ = f"{kind.value.lower()}s"
        return view

    def search_view(self, kind: ResourceKind) -> Callable[[], Response]:
        def view() -> Response:
            return self.query(kind, self._body(), context=Context.SEARCH_RESPONSE)

        view.__name__ = f"search_{kind.value.lower()}s"
        return view

    def resource_view(self, kind: ResourceKind) -> Callable[[str], Response]:
        def view(resource_id: str) -> Response:
            if request.method == "GET":
                return self.get(kind, resource_id)
            if request.method == "PUT":
                return self.replace(kind, resource_id)
            if request.method == "PATCH":
                return self.patch(kind, resource_id)
            return self.delete(kind, resource_id)

        view.__name__ = kind.value.lower()
        return view

    def query(
        self,
        kind: ResourceKind,
        payload: Any,
        context: Context = Context.RESOURCE_QUERY_RESPONSE,
    ) -> Response:
        """GET ``/Users`` or POST ``/Users/.search`` (RFC 7644 sections 3.4.2 and 3.4.3)."""
        if not isinstance(payload, dict):
            raise InvalidValueException(detail="A SearchRequest must be a JSON object")
        served = self.served()
        parsed = parse_list_request(kind, payload, self.settings, served)
        page = self._read(lambda backend: list_resources(backend, kind, parsed.query))
        document = list_response(
            [kind],
            page.total,
            parsed.query.start_index,
            [(kind, stored_from_document(document)) for document in page.resources],
            self.base_url,
            context,
            parsed.parameters,
            served,
        )
        return scim_json_response(document, 200)

    def search_root(self) -> Response:
        """POST ``/.search`` over Users and Groups (RFC 7644 section 3.4.3)."""
        payload = self._body()
        if not isinstance(payload, dict):
            raise InvalidValueException(detail="A SearchRequest must be a JSON object")
        kinds = [ResourceKind.USER, ResourceKind.GROUP]
        served = self.served()
        parsed = parse_search(payload, self.settings, kinds, served)
        total, resources = self._read(
            lambda backend: search_all(backend, kinds, {kind: parsed[kind].query for kind in kinds})
        )
        first = parsed[kinds[0]]
        document = list_response(
            kinds,
            total,
            first.query.start_index,
            resources,
            self.base_url,
            Context.SEARCH_RESPONSE,
            first.parameters,
            served,
        )
        return scim_json_response(document, 200)

    def get(self, kind: ResourceKind, resource_id: str) -> Response:
        """GET one resource (RFC 7644 section 3.4.1), or 304 when ``If-None-Match`` names it."""
        parameters = self._response_parameters(kind)
        include_members = self._wants_members(kind, parameters)
        stored = self._read(
            lambda backend: backend.get(kind, resource_id, include_members=include_members)
        )
        if_none_match = self._if_none_match()
        if if_none_match is not None and etag_matches(if_none_match, stored.version):
            return _no_content({"ETag": weak_etag(stored.version)}, status=304)
        return self._resource(kind, stored, 200, Context.RESOURCE_QUERY_RESPONSE, parameters)

    def create(self, kind: ResourceKind) -> Response:
        """POST a resource (RFC 7644 section 3.3): 201 with ``Location``."""
        creation = prepare_creation(
            kind, self._body(), self.settings.max_multi_valued, self.served()
        )
        parameters = self._response_parameters(kind)
        stored = self._write(lambda backend: apply_creation(backend, creation))
        response = self._resource(kind, stored, 201, Context.RESOURCE_CREATION_RESPONSE, parameters)
        response.headers["Location"] = resource_location(self.base_url, kind, stored.id)
        return response

    def replace(self, kind: ResourceKind, resource_id: str) -> Response:
        """PUT a resource (RFC 7644 section 3.5.1): 200 with the resource.

        A backend answers a group write without its members, which it need
        not load; they are read back when the response carries them, as Okta
        checks the member list of its PUT.
        """
        replacement = prepare_replacement(
            kind,
            resource_id,
            self._body(),
            self._if_match(),
            self.settings.max_multi_valued,
            self.served(),
        )
        parameters = self._response_parameters(kind)
        include_members = self._wants_members(kind, parameters)

        def apply(backend: Backend) -> Stored:
            stored = apply_replacement(backend, replacement)
            if kind is ResourceKind.GROUP and include_members:
                return backend.get(kind, resource_id, include_members=True)
            return stored

        stored = self._write(apply)
        return self._resource(kind, stored, 200, Context.RESOURCE_REPLACEMENT_RESPONSE, parameters)

    def patch(self, kind: ResourceKind, resource_id: str) -> Response:
        """PATCH a resource (RFC 7644 section 3.5.2).

        A User answers 200 with the resource; a Group answers 204, unless the
        request names ``attributes`` or ``excludedAttributes``: a group's
        member list is never serialized just to acknowledge a change.
        """
        patch = prepare_patch(
            kind, resource_id, self._body(), self.settings, self._if_match(), self.served()
        )
        parameters = self._response_parameters(kind)
        projected = bool(parameters and (parameters.attributes or parameters.excluded_attributes))
        include_members = self._wants_members(kind, parameters)

        def apply(backend: Backend) -> tuple[Stored, bool]:
            result = apply_patch(backend, patch, self.settings, include_members=include_members)
            if kind is ResourceKind.USER:
                return result.stored, True
            if projected:
                return backend.get(kind, resource_id, include_members=include_members), True
            return result.stored, False

        stored, answered = self._write(apply)
        if not answered:
            return _no_content({"ETag": weak_etag(stored.version)})
        return self._resource(kind, stored, 200, Context.RESOURCE_PATCH_RESPONSE, parameters)

    def delete(self, kind: ResourceKind, resource_id: str) -> Response:
        """DELETE a resource (RFC 7644 section 3.6): 204."""
        if_match = self._if_match()
        self._write(lambda backend: delete_resource(backend, kind, resource_id, if_match))
        return _no_content()

    def bulk(self) -> Response:
        """POST ``/Bulk`` (RFC 7644 section 3.7): 200 with a BulkResponse."""
        payload = read_json_body(request, self.settings.bulk_max_payload_bytes)
        base_url = self.base_url
        served = self.served()
        document = self._write(
            lambda backend: process_bulk(backend, payload, self.settings, base_url, served)
        )
        return scim_json_response(document, 200)

    # -- discovery ---------------------------------------------------------------

    def service_provider_config(self) -> Response:
        return scim_json_response(service_provider_config(self.settings, self.base_url), 200)

    def _resource_types(self) -> tuple[ResourceType, ...]:
        return (*resource_types(self.served()), *self.published_types)

    def _schemas(self) -> tuple[Schema, ...]:
        return (*schemas(self.served()), *self.published_schemas)

    def resource_types_view(self) -> Response:
        documents = [resource_type_document(rt, self.base_url) for rt in self._resource_types()]
        return scim_json_response(discovery_list(documents), 200)

    def resource_type(self, resource_type_id: str) -> Response:
        found = find_resource_type(resource_type_id, self._resource_types())
        if found is None:
            raise NotFoundException(detail=f"No resource type {resource_type_id!r}")
        return scim_json_response(resource_type_document(found, self.base_url), 200)

    def schemas_view(self) -> Response:
        documents = [schema_document(schema, self.base_url) for schema in self._schemas()]
        return scim_json_response(discovery_list(documents), 200)

    def schema(self, schema_id: str) -> Response:
        found = find_schema(schema_id, self._schemas())
        if found is None:
            raise NotFoundException(detail=f"No schema {schema_id!r}")
        return scim_json_response(schema_document(found, self.base_url), 200)

    def published_list(self, publication: Publication) -> Callable[[], Response]:
        """GET a published endpoint, such as ``/Roles`` (RFC 7644 section 3.4.2)."""

        def view() -> Response:
            parameters = query_parameters(request.args)
            document = list_published(publication, parameters, self.settings, self.base_url)
            return scim_json_response(document, 200)

        view.__name__ = f"list_{publication.type.id.lower()}"
        return view

    def published_resource(self, publication: Publication) -> Callable[[str], Response]:
        """GET one published resource, such as ``/Roles/Admin`` (RFC 7644 section 3.4.1)."""

        def view(resource_id: str) -> Response:
            document = get_published(
                publication, resource_id, self.base_url, self._published_parameters(publication)
            )
            return scim_json_response(document, 200)

        view.__name__ = f"published_{publication.type.id.lower()}"
        return view

    # -- helpers -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The absolute SCIM base URL of this request, such as ``https://hub.example/scim/v2``."""
        found: str | None = g.get("scim_base_url")
        if found is None:
            found = self._base_urls(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                request.scheme,
                request.host,
                request.root_path,
                request.blueprint,
            )
            g.scim_base_url = found
        return found

    def _body(self) -> Any:
        return read_json_body(request, self.settings.max_payload_bytes)

    def _read(self, action: Callable[[Backend], T]) -> T:
        backend = self.provider()
        try:
            return action(backend)
        finally:
            backend.rollback()

    def _write(self, action: Callable[[Backend], T]) -> T:
        """Run a mutating request and commit it once, or roll everything back."""
        backend = self.provider()
        try:
            result = action(backend)
        except BaseException:
            backend.rollback()
            raise
        backend.commit()
        return result

    def _resource(
        self,
        kind: ResourceKind,
        stored: Stored,
        status: int,
        context: Context,
        parameters: ResponseParameters[Any] | None,
    ) -> Response:
        document = resource_response(
            kind, stored, self.base_url, context, parameters, self.served()
        )
        return scim_json_response(document, status, {"ETag": weak_etag(stored.version)})

    def _response_parameters(self, kind: ResourceKind) -> ResponseParameters[Any] | None:
        """``attributes`` and ``excludedAttributes`` of the query string (RFC 7644 section 3.9)."""
        model = self.served().model(kind)
        return _projection(ResponseParameters[model])  # type: ignore[valid-type]

    def _published_parameters(self, publication: Publication) -> SearchRequest[Any] | None:
        """``attributes`` and ``excludedAttributes`` for a published resource (RFC 7644 3.9)."""
        return _projection(SearchRequest[publication.type.model])  # type: ignore[name-defined]

    def _wants_members(
        self, kind: ResourceKind, parameters: ResponseParameters[Any] | None
    ) -> bool:
        model = self.served().model(kind)
        return wants_attribute(parameters, MEMBERSHIP_ATTRIBUTE[kind], model)

    def _if_match(self) -> ETags | None:
        if not self.settings.etag_supported or "If-Match" not in request.headers:
            return None
        return request.if_match

    def _if_none_match(self) -> ETags | None:
        if not self.settings.etag_supported or "If-None-Match" not in request.headers:
            return None
        return request.if_none_match


P = TypeVar("P", ResponseParameters[Any], SearchRequest[Any])


def _projection(parameters_type: type[P]) -> P | None:
    """The query string's ``attributes`` and ``excludedAttributes`` as ``parameters_type``.

    None when it names neither (RFC 7644 section 3.9).
    """
    given = {
        key: value
        for key, value in query_parameters(request.args).items()
        if key in ("attributes", "excludedAttributes")
    }
    if not given:
        return None
    try:
        return parameters_type.model_validate(given)
    except ValidationError as exc:
        raise exception_from_validation_error(exc) from exc


def _no_content(headers: dict[str, str] | None = None, status: int = 204) -> Response:
    """An empty response, without a Content-Type since it has no content."""
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]
    return response
