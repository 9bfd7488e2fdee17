"""Hub access derived from the directory: facts read in batches, recompute, seats, snapshots."""
