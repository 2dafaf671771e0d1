"""Everything that crosses to or from participants: rendering, calendars, mail."""
