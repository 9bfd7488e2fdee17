"""Hub access as pure rules over plain values (docs/rules.md).

Nothing here touches Flask, SQLAlchemy or any I/O: the provisioning layer reads
the directory and IT's settings, calls these functions, and stores what they
return. Modules:

- :mod:`.roles`: the four platform roles and the permission matrix.
- :mod:`.catalog`: products, their permissions (read-only or not), product
  roles, access modes, onboarding flows, and product states.
- :mod:`.mapping`: IT's mapping file (TOML), its validation with line
  numbers, and binding rules to IdP groups that survives renames.
- :mod:`.owners`: the two-Owner cap, hold queue and last-Owner rule as a pure
  state transition.
- :mod:`.derive`: one user's effective access (role, grants, dormant grants,
  the role ceiling).
- :mod:`.authorize`: may this user do X, with the reason.
- :mod:`.changes`: what changed in a user's access, before and after, and why
  (for the audit trail and the mapping preview).
- :mod:`.onboarding`: once per user per product, ever.
"""
