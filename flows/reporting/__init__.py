"""Reporting: indicators with small-group protection, and the reflection report."""
