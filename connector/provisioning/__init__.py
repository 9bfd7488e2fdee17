"""The SCIM write path: a validated request, then one transaction that changes it all.

:class:`connector.provisioning.writes.ScimWrites` is the organization's
:class:`scim.backend.Backend`: each of its methods takes the rules' lock,
locks what the change touches, applies it through the directory store,
recomputes the access of the users it can affect and journals the change,
in that order (docs/architecture.md, "The write path").
"""
