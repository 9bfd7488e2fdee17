"""The HTTP surface: the app factory, the SCIM mount, the access API, the probes, the server."""
