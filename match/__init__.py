"""facestream match stage."""
