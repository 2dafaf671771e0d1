"""Participants' pages: follow-up answers and meeting RSVP, reached by a personal link."""
