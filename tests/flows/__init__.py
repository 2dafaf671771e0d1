"""The application through its functions, its commands (in-process) and its pages (over
httpx's ASGI transport), on a real store (SQLite and PostgreSQL), real Prefect in the test
process, a real SMTP server and a real Dovecot."""
