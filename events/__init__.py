"""The events stage: sightings (who was seen where, when) with snapshots, in SQLite or PostgreSQL."""
