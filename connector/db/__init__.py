"""The database: declarative base, engines and sessions, schema, migrations, planner statistics."""
