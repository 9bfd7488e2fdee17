"""Hub access kept beside the directory: mapping state, seats, grants, snapshots, onboarding.

The pure rules live in :mod:`connector.access`; this package stores their
inputs and outputs and recomputes them inside each SCIM write's transaction.
"""
