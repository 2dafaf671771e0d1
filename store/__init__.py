"""The SQL store: tables, engine, queries and migrations."""
