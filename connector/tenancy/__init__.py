"""Organizations and who may act for them: credentials, OAuth clients, rate limits."""
