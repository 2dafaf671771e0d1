"""The store's own promises: migrations that agree with the models, the outbox's claims, and
erasure and access checked by dumping the whole database."""
