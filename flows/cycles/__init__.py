"""Cycles: launching, the plan and its timing, re-sequencing, approval, overview, delivery."""
