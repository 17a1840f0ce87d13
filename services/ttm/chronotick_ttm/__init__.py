"""The ttm family service: IBM Granite TinyTimeMixer behind the ChronoTick kit."""
