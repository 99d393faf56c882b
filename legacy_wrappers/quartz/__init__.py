"""cron-bridge's Quartz listener plugin (Java sources in ``src/``; build with :mod:`.build`)."""
