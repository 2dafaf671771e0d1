"""One layer at a time, with no store, no Prefect and no process of its own: the calendar,
the message's shape, rendering, the SMTP and Maildir transports, the rate limiter, the plan's
rules, the templates, the stage kinds' protocol, and the layers themselves."""
