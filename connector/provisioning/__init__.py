"""Hub access kept beside the directory: mapping state, seats, grants, snapshots, onboarding.

The pure rules live in :mod:`connector.access`; this package stores their
inputs and outputs and recomputes them inside each SCIM write's transaction.
Callers use :mod:`.service`; the modules behind it:

- :mod:`.tables`: the rows (mapping, bindings, product states, manual grants,
  Owner seats and holds, access snapshots, onboarding).
- :mod:`.locking`: the organization's write lock, taken before any directory write.
- :mod:`.context`: who and which request caused a change, for the audit trail.
- :mod:`.directory`: batched reads of what derivation needs.
- :mod:`.memo`: what a transaction already read (the org's rules), until it ends.
- :mod:`.engine`: recompute k users, seat Owners, store, audit, announce.
- :mod:`.journal`: a change's snapshots, audit entries and events, written together.
- :mod:`.listener`: :class:`~.listener.AccessListener`, the store's directory listener.
- :mod:`.mappings`, :mod:`.grants`, :mod:`.reads`, :mod:`.health`: what IT and products call.
"""
