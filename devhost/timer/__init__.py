"""Timer triggers: NCRONTAB and TimeSpan schedules, schedule status, missed-run detection."""
