"""The IT admin console: IT signs in with its own IdP and steers provisioning in a browser.

Served by the same Flask app under ``/admin/<org>/`` (:mod:`connector.console.views`),
with server-side sessions (:mod:`connector.console.sessions`), OIDC sign-in
(:mod:`connector.console.oidc`) and the role matrix of
:mod:`connector.access.roles` checked on every route. Every action calls the
same service in :mod:`connector.admin` as the ``hub-scim`` command does.
"""
