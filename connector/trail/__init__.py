"""What happened, kept and told: the audit trail, the events outbox and its delivery."""
