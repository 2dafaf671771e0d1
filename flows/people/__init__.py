"""People: participants and their import, audiences, answers, the inbox, consent and erasure."""
