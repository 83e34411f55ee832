"""Safety filters, reflex critics, watchdog and mode machine (issue 5)."""
