"""Street-level mapping: GPS tracks from EXIF or sidecars, sequences, GeoJSON, HTML maps, structure from motion."""
