"""The toto family service: Datadog's Toto (toto-ts) behind the ChronoTick kit."""
